//! LiveKit access tokens (HS256 JWT) for the test room, as LiveKit's own `AccessToken` mints them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let (mut ipad, mut opad) = ([0x36u8; 64], [0x5cu8; 64]);
    for i in 0..64 {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// A token for `identity` in `room`; `kind` is "" or "agent"; `attrs` become participant attributes.
pub fn mint(
    secret: &str,
    identity: &str,
    room: &str,
    kind: &str,
    attrs: &[(&str, &str)],
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = json!({
        "iss": crate::LK_KEY, "sub": identity, "name": identity, "nbf": now - 5, "exp": now + 6 * 3600,
        "video": {"roomJoin": true, "room": room, "canPublish": true, "canSubscribe": true, "canPublishData": true},
    });
    if !kind.is_empty() {
        claims["kind"] = Value::from(kind);
    }
    if !attrs.is_empty() {
        let map: serde_json::Map<String, Value> = attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        claims["attributes"] = Value::Object(map);
    }
    sign(secret, &claims)
}

/// A token for the server's room service API (RemoveParticipant, DeleteRoom) on `room`: no participant.
pub fn admin(secret: &str, room: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = json!({
        "iss": crate::LK_KEY, "nbf": now - 5, "exp": now + 600,
        "video": {"roomAdmin": true, "roomCreate": true, "room": room},
    });
    sign(secret, &claims)
}

/// A token of the test keys' shape for `identity` in `room` that expired a minute ago.
pub fn expired(secret: &str, identity: &str, room: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = json!({
        "iss": crate::LK_KEY, "sub": identity, "name": identity, "nbf": now - 3600, "exp": now - 60,
        "kind": "agent",
        "video": {"roomJoin": true, "room": room, "canPublish": true, "canSubscribe": true, "canPublishData": true},
    });
    sign(secret, &claims)
}

fn sign(secret: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing = format!("{header}.{payload}");
    let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(secret.as_bytes(), signing.as_bytes()));
    format!("{signing}.{sig}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = super::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
