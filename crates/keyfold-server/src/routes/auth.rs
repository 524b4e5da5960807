//! Login, logout, user action signing and registration (`/auth/...`). These are the
//! "bootstrap" calls: they do not themselves need a user action.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use keyfold_types::auth::{
    ChallengeResponse, CreateLoginChallengeBody, CreateRegistrationChallengeBody,
    CreateUserActionChallengeBody, CreateUserActionSignatureBody, LoginBody, LoginResponse,
    LogoutBody, MessageResponse, RegisterBody, RegisterResponse, RegistrationChallengeResponse,
    ResendRegistrationCodeBody, UserActionResponse,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Errors;
use crate::error::ApiResult;
use crate::extract::{Auth, JsonBody, OptionalJsonBody, Perm, Signed, bearer};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login_init))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(action_init))
        .routes(routes!(action_sign))
        .routes(routes!(registration_init))
        .routes(routes!(register))
        .routes(routes!(resend_registration_code))
        .routes(routes!(delegated_registration))
        .routes(routes!(register_end_user))
        .routes(routes!(delegated_login))
        .routes(routes!(send_login_code))
}

/// Start a login: returns a challenge for the user's credentials to sign.
#[utoipa::path(post, path = "/auth/login/init", tag = "auth",
    request_body = CreateLoginChallengeBody,
    responses((status = 200, body = ChallengeResponse), Errors))]
async fn login_init(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<CreateLoginChallengeBody>,
) -> ApiResult<Json<ChallengeResponse>> {
    Ok(Json(s.auth.login_init(body).await?))
}

/// Complete a login with the signed challenge; returns the access token.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body = LoginBody,
    responses((status = 200, body = LoginResponse), Errors))]
async fn login(
    State(s): State<AppState>,
    app: Option<axum::Extension<keyfold_auth::apps::AppContext>>,
    JsonBody(body): JsonBody<LoginBody>,
) -> ApiResult<Json<LoginResponse>> {
    Ok(Json(LoginResponse {
        token: s.auth.login(body, app.as_ref().map(|a| &a.0)).await?,
    }))
}

/// End this session (or every login session of the caller with `allSessions`).
#[utoipa::path(put, path = "/auth/logout", tag = "auth",
    request_body(content = LogoutBody, description = "optional"),
    security(("bearer" = [])),
    responses((status = 200, body = MessageResponse), Errors))]
async fn logout(
    State(s): State<AppState>,
    Auth(p): Auth,
    OptionalJsonBody(body): OptionalJsonBody<LogoutBody>,
) -> ApiResult<Json<MessageResponse>> {
    s.auth
        .logout(&p, body.all_sessions.unwrap_or(false))
        .await?;
    Ok(Json(MessageResponse {
        message: "logged out".into(),
    }))
}

/// Ask for a challenge bound to the exact request (method, path, body) about to be made.
#[utoipa::path(post, path = "/auth/action/init", tag = "auth",
    request_body = CreateUserActionChallengeBody,
    security(("bearer" = [])),
    responses((status = 200, body = ChallengeResponse), Errors))]
async fn action_init(
    State(s): State<AppState>,
    Auth(p): Auth,
    JsonBody(body): JsonBody<CreateUserActionChallengeBody>,
) -> ApiResult<Json<ChallengeResponse>> {
    Ok(Json(s.auth.action_init(&p, body).await?))
}

/// Trade the signed action challenge for a single-use `x-dfns-useraction` token.
#[utoipa::path(post, path = "/auth/action", tag = "auth",
    request_body = CreateUserActionSignatureBody,
    security(("bearer" = [])),
    responses((status = 200, body = UserActionResponse), Errors))]
async fn action_sign(
    State(s): State<AppState>,
    Auth(p): Auth,
    JsonBody(body): JsonBody<CreateUserActionSignatureBody>,
) -> ApiResult<Json<UserActionResponse>> {
    Ok(Json(UserActionResponse {
        user_action: s.auth.action_sign(&p, body).await?,
    }))
}

/// Prove the emailed registration code; returns the registration challenge and a temporary
/// token for `POST /auth/registration`.
#[utoipa::path(post, path = "/auth/registration/init", tag = "auth",
    request_body = CreateRegistrationChallengeBody,
    responses((status = 200, body = RegistrationChallengeResponse), Errors))]
async fn registration_init(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<CreateRegistrationChallengeBody>,
) -> ApiResult<Json<RegistrationChallengeResponse>> {
    Ok(Json(s.auth.registration_init(body).await?))
}

/// Register the first credential (Bearer: the temporary token from registration init).
#[utoipa::path(post, path = "/auth/registration", tag = "auth",
    request_body = RegisterBody,
    security(("bearer" = [])),
    responses((status = 200, body = RegisterResponse), Errors))]
async fn register(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RegisterBody>,
) -> ApiResult<Json<RegisterResponse>> {
    let token = bearer(&headers)?;
    Ok(Json(s.auth.register(token, body).await?))
}

/// Email a fresh registration code to an invited user. The answer is the same whether or not
/// the user exists.
#[utoipa::path(put, path = "/auth/registration/code", tag = "auth",
    request_body = ResendRegistrationCodeBody,
    responses((status = 200, body = MessageResponse), Errors))]
async fn resend_registration_code(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<ResendRegistrationCodeBody>,
) -> ApiResult<Json<MessageResponse>> {
    s.users
        .resend_registration_code(&body.org_id, &body.username)
        .await?;
    s.outbox.notify_one();
    Ok(Json(MessageResponse {
        message: "if the user is awaiting registration, a new code is on its way".into(),
    }))
}

/// Create an end user (no email is sent) and return its registration challenge and
/// temporary token, for the service to hand to the user's device.
#[utoipa::path(post, path = "/auth/registration/delegated", tag = "auth",
    request_body = keyfold_types::auth::DelegatedRegistrationBody,
    params(("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = RegistrationChallengeResponse), Errors))]
async fn delegated_registration(
    State(s): State<AppState>,
    Perm(g): Perm<keyfold_domain::authz::op::RegisterDelegated>,
    signed: Signed<keyfold_types::auth::DelegatedRegistrationBody>,
) -> ApiResult<Json<RegistrationChallengeResponse>> {
    Ok(Json(s.auth.delegated_registration(&g, signed.body).await?))
}

/// Register an end user's credential (Bearer: the temporary token of its registration
/// challenge); returns a login token for it, and creates the wallets it asks for on keys
/// delegated to it (only the end user can sign with them).
#[utoipa::path(post, path = "/auth/registration/enduser", tag = "auth",
    request_body = keyfold_types::auth::RegisterEndUserBody,
    security(("bearer" = [])),
    responses((status = 200, body = keyfold_types::auth::RegisterEndUserResponse), Errors))]
async fn register_end_user(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<keyfold_types::auth::RegisterEndUserBody>,
) -> ApiResult<Json<keyfold_types::auth::RegisterEndUserResponse>> {
    let token = bearer(&headers)?;
    // Wallets are checked (networks, names, signers ready) before the registration is
    // spent, and created once it has succeeded, delegated to the new end user.
    let plan = match body.wallets.is_empty() {
        true => None,
        false => {
            s.auth.check_end_user_registration(token).await?;
            Some(s.keys()?.plan_end_user_wallets(&body.wallets).await?)
        }
    };
    let mut registered = s.auth.register_end_user(token, body).await?;
    if let Some(plan) = plan {
        registered.wallets = s
            .keys()?
            .create_end_user_wallets(&registered.user.org_id, &registered.user.id, plan)
            .await?;
    }
    Ok(Json(registered))
}

/// A login token for one of the organization's end users.
#[utoipa::path(post, path = "/auth/login/delegated", tag = "auth",
    request_body = keyfold_types::auth::DelegatedLoginBody,
    params(("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = LoginResponse), Errors))]
async fn delegated_login(
    State(s): State<AppState>,
    Perm(g): Perm<keyfold_domain::authz::op::LoginDelegated>,
    signed: Signed<keyfold_types::auth::DelegatedLoginBody>,
) -> ApiResult<Json<LoginResponse>> {
    Ok(Json(LoginResponse {
        token: s.auth.delegated_login(&g, signed.body).await?,
    }))
}

/// Email a login code to a user with a PasswordProtectedKey; with it, `POST /auth/login/init`
/// returns the encrypted key. The answer is the same whether or not the user exists.
#[utoipa::path(post, path = "/auth/login/code", tag = "auth",
    request_body = ResendRegistrationCodeBody,
    responses((status = 200, body = MessageResponse), Errors))]
async fn send_login_code(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<ResendRegistrationCodeBody>,
) -> ApiResult<Json<MessageResponse>> {
    s.auth.send_login_code(&body.org_id, &body.username).await?;
    s.outbox.notify_one();
    Ok(Json(MessageResponse {
        message: "if the user has a password-protected key, a login code is on its way".into(),
    }))
}
