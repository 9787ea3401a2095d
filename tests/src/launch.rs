//! Launch requests for tests: the JSON body the bitHuman plugin sends, and a LiveKit that never answers (its
//! sessions stay `pending`, joining, for as long as a test needs).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::Supervisor;

/// A TCP server on loopback that accepts connections and never answers: a LiveKit that hangs.
pub fn blackhole() -> String {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn); // keep it open, say nothing
        }
    });
    format!("ws://127.0.0.1:{port}")
}

/// The plugin's JSON body for avatar `avatar` in `room`, serving `agent`, its token signed with `secret`, with
/// the shipped portrait as base64.
pub fn body(url: &str, secret: &str, room: &str, avatar: &str, agent: &str) -> Value {
    let token = crate::token::mint(
        secret,
        avatar,
        room,
        "agent",
        &[("lk.publish_on_behalf", agent)],
    );
    json!({
        "livekit_url": url, "livekit_token": token, "room_name": room, "mode": "gpu",
        "image": STANDARD.encode(crate::paths::default_portrait()),
    })
}

impl Supervisor {
    /// `POST /launch` that must be accepted; returns the task id.
    pub fn launch(&self, body: &Value) -> String {
        let (status, reply) = self.post_json("/launch", body, &[]);
        assert_eq!(status, 200, "launch: {reply}");
        reply["task_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no task_id: {reply}"))
            .to_owned()
    }
}
