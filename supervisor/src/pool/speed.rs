//! The model pack's speed against what its sessions need. A pack slower on this device than the frame rate its
//! sessions play (a full-size neural generator on a CPU renders a tenth of a frame per second) would serve
//! every session with most frames late, so the pool refuses it at start-up unless the operator opted in
//! (`ALLOW_SLOW_PACK`), and says why on `/ready`, on `/launch` and in the log.

use lipcast_proto::PrepareReply;

/// The sentence saying a verified pack renders too slowly for its sessions, or `None` when it keeps up.
pub fn too_slow(p: &PrepareReply) -> Option<String> {
    let needed = f64::from(p.session_fps);
    (p.frames_per_second < needed).then(|| {
        format!(
            "the model pack {} renders {:.2} frames per second on {} ({}), and its sessions play {}",
            p.pack_name,
            p.frames_per_second,
            p.device().name(),
            if p.gpu.is_empty() { &p.cpu } else { &p.gpu },
            p.session_fps
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(fps: f64) -> PrepareReply {
        PrepareReply {
            device: lipcast_proto::Device::Cpu.into(),
            pack_name: "musetalk-1.5".into(),
            cpu: "Some CPU".into(),
            frames_per_second: fps,
            session_fps: 25,
            ..Default::default()
        }
    }

    #[test]
    fn slower_than_the_session_is_too_slow() {
        let why = too_slow(&reply(0.36)).expect("0.36 fps is too slow for 25");
        assert_eq!(
            why,
            "the model pack musetalk-1.5 renders 0.36 frames per second on cpu (Some CPU), and its \
             sessions play 25"
        );
        assert!(too_slow(&reply(24.9)).is_some());
    }

    #[test]
    fn as_fast_as_the_session_is_enough() {
        assert_eq!(too_slow(&reply(25.0)), None);
        assert_eq!(too_slow(&reply(600.0)), None);
    }
}
