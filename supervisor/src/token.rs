//! Reading (not verifying) a LiveKit access token: the supervisor needs the avatar's identity (`sub`)
//! for idempotency and the room grant to catch mismatches early. LiveKit verifies the signature.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub identity: String,
    pub room: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("livekit_token is not a JWT (expected three dot-separated parts)")]
    NotJwt,
    #[error("livekit_token payload is not base64url-encoded JSON")]
    BadPayload,
    #[error("livekit_token has no `sub` (participant identity)")]
    NoIdentity,
}

pub fn read_claims(token: &str) -> Result<TokenClaims, TokenError> {
    let mut parts = token.trim().split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::NotJwt);
    };
    // JWS compact form: three non-empty base64url parts (a padded payload is tolerated).
    let base64url = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !base64url(header) || !base64url(payload.trim_end_matches('=')) || !base64url(sig) {
        return Err(TokenError::NotJwt);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| TokenError::BadPayload)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::BadPayload)?;
    let identity = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or(TokenError::NoIdentity)?
        .to_owned();
    let room = claims
        .get("video")
        .and_then(|v| v.get("room"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    Ok(TokenClaims { identity, room })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_identity_and_room() {
        let c = read_claims(&jwt(
            r#"{"sub":"bithuman-avatar-agent","video":{"room":"r1","roomJoin":true}}"#,
        ))
        .expect("claims");
        assert_eq!(c.identity, "bithuman-avatar-agent");
        assert_eq!(c.room.as_deref(), Some("r1"));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(read_claims("abc"), Err(TokenError::NotJwt));
        assert_eq!(read_claims("a.b.c.d"), Err(TokenError::NotJwt));
        assert_eq!(read_claims("a.!!!.c"), Err(TokenError::NotJwt));
        assert_eq!(read_claims("a.b.c"), Err(TokenError::BadPayload));
        assert_eq!(read_claims("..."), Err(TokenError::NotJwt));
        assert_eq!(read_claims("a..c"), Err(TokenError::NotJwt));
        assert_eq!(
            read_claims(&format!("Bearer {}", jwt(r#"{"sub":"x"}"#))),
            Err(TokenError::NotJwt)
        );
        assert_eq!(
            read_claims(&jwt(r#"{"name":"x"}"#)),
            Err(TokenError::NoIdentity)
        );
    }
}
