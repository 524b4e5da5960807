//! Keyset pagination: newest first, and a page token that names the last item seen
//! (`created_at` + id), so pages stay stable while rows are inserted and no offset scan grows
//! with the page number.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyfold_types::limits::{PAGE_DEFAULT, PAGE_MAX};

use crate::error::{DomainError, Result};
use crate::time::Timestamp;

/// Position after which the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: Timestamp,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.created_at.0, self.id))
    }

    pub fn decode(token: &str) -> Result<Self> {
        let bad = || DomainError::invalid("paginationToken is not a token this server issued");
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let s = String::from_utf8(raw).map_err(|_| bad())?;
        let (ts, id) = s.split_once('.').ok_or_else(bad)?;
        let created_at = Timestamp(ts.parse().map_err(|_| bad())?);
        if id.is_empty() || id.len() > 128 {
            return Err(bad());
        }
        Ok(Self {
            created_at,
            id: id.to_string(),
        })
    }
}

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl PageRequest {
    pub fn parse(limit: Option<u32>, token: Option<&str>) -> Result<Self> {
        let limit = match limit {
            None => PAGE_DEFAULT,
            Some(0) => return Err(DomainError::invalid("limit must be at least 1")),
            Some(n) if n > PAGE_MAX => {
                return Err(DomainError::invalid(format!(
                    "limit must be at most {PAGE_MAX}"
                )));
            }
            Some(n) => n,
        };
        let after = match token {
            None | Some("") => None,
            Some(t) => Some(Cursor::decode(t)?),
        };
        Ok(Self { limit, after })
    }
}

/// A page of results. Stores fetch `limit + 1` rows to know whether another page follows.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }

    /// The wire form: the items and the token of the next page.
    pub fn into_list(self) -> keyfold_types::page::ListResponse<T> {
        keyfold_types::page::ListResponse {
            items: self.items,
            next_page_token: self.next.map(|c| c.encode()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_rejects_garbage() {
        let c = Cursor {
            created_at: Timestamp(42),
            id: "us-abc".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        assert!(Cursor::decode("!!!").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("x.y")).is_err());
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(101), None).is_err());
        assert_eq!(PageRequest::parse(None, None).map(|p| p.limit), Ok(50));
    }
}
