//! Latency of the authentication round trips, as a client sees them.
//!
//! `cargo run --release -p keyfold-sdk --example auth_bench -- ADMIN_JSON [ITERATIONS]`
//!
//! Measures, sequentially (one request in flight): a full login (init + sign + login), a user
//! action (init + sign + exchange), and a whole signed mutation (user action + the request).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use keyfold_sdk::{AdminFile, Client, KeySigner};
use keyfold_types::auth::HttpMethod;
use keyfold_types::users::UpdateUserBody;

fn summary(name: &str, mut d: Vec<Duration>) {
    d.sort();
    let pct = |p: f64| d[((d.len() as f64 - 1.0) * p).round() as usize];
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    println!(
        "| {name} | {} | {:.2} | {:.2} | {:.2} |",
        d.len(),
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(d[d.len() - 1])
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: auth_bench ADMIN_JSON [ITERATIONS]");
    let n: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(200);
    let admin: AdminFile = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let signer = KeySigner::from_pkcs8_pem(&admin.cred_id, &admin.private_key).unwrap();

    let mut login = Vec::with_capacity(n);
    let mut client = None;
    for _ in 0..n {
        let t = Instant::now();
        let c = Client::login(
            &admin.base_url,
            &admin.org_id,
            &admin.username,
            signer.clone(),
        )
        .await
        .unwrap();
        login.push(t.elapsed());
        client = Some(c);
    }
    let client = client.unwrap();

    let mut action = Vec::with_capacity(n);
    let path = format!("/auth/users/{}", admin.user_id);
    let body = r#"{"isSSORequired":false}"#;
    for _ in 0..n {
        let t = Instant::now();
        client
            .user_action(HttpMethod::Put, &path, body)
            .await
            .unwrap();
        action.push(t.elapsed());
    }

    let mut mutation = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client
            .update_user(
                &admin.user_id,
                &UpdateUserBody {
                    is_sso_required: false,
                },
            )
            .await
            .unwrap();
        mutation.push(t.elapsed());
    }

    let mut get = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client.get_user(&admin.user_id).await.unwrap();
        get.push(t.elapsed());
    }

    println!("| round trip | n | p50 ms | p99 ms | max ms |");
    println!("| --- | --- | --- | --- | --- |");
    summary("login (init + sign + login)", login);
    summary("user action (init + sign + exchange)", action);
    summary("signed PUT /auth/users/:id (action + request)", mutation);
    summary("GET /auth/users/:id", get);
}
