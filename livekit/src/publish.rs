//! Publishing a video and an audio track and capturing frames into them.

use std::time::Duration;

use super::dispatch::Engine;
use super::error::LiveKitError;
use super::handle::OwnedHandle;
use super::proto::{
    self, AudioFrameBufferInfo, CaptureAudioFrameRequest, CaptureVideoFrameRequest,
    ClearAudioBufferRequest, CreateAudioTrackRequest, CreateVideoTrackRequest, GetStatsRequest,
    NewAudioSourceRequest, NewVideoSourceRequest, PublishTrackRequest, TrackPublishOptions,
    VideoBufferInfo, VideoBufferType, VideoEncoding, VideoRotation, VideoSourceResolution,
    ffi_event, ffi_request, ffi_response, publish_track_callback, rtc_stats, video_buffer_info,
};
use super::room::Room;

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the published video's sender statistics are read (and logged when its loss counters moved).
const STATS_EVERY: Duration = Duration::from_secs(5);

/// Video codec to publish with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodecChoice {
    H264,
    Vp8,
}

impl VideoCodecChoice {
    fn proto(self) -> i32 {
        match self {
            Self::H264 => proto::VideoCodec::H264 as i32,
            Self::Vp8 => proto::VideoCodec::Vp8 as i32,
        }
    }
}

/// How to publish a video track.
#[derive(Debug, Clone)]
pub struct VideoPublishOptions {
    pub width: u32,
    pub height: u32,
    pub max_framerate: f64,
    pub max_bitrate: u64,
    /// Preferred codec; H.264 falls back to VP8 when the engine refuses it.
    pub codec: VideoCodecChoice,
    /// What the encoder gives up first under CPU or bandwidth pressure. Default: keep the frame rate
    /// (lip sync needs every frame; the resolution may drop).
    pub degradation: proto::DegradationPreference,
}

impl Default for VideoPublishOptions {
    fn default() -> Self {
        Self {
            width: 512,
            height: 512,
            max_framerate: 25.0,
            max_bitrate: 2_000_000,
            codec: VideoCodecChoice::H264,
            degradation: proto::DegradationPreference::MaintainFramerate,
        }
    }
}

/// How to publish an audio track.
#[derive(Debug, Clone)]
pub struct AudioPublishOptions {
    pub sample_rate: u32,
    pub num_channels: u32,
    /// The engine's buffer; `capture` waits while it is full (LiveKit's AvatarRunner uses 100 ms).
    pub queue_size_ms: u32,
}

impl Default for AudioPublishOptions {
    fn default() -> Self {
        Self {
            sample_rate: 24_000,
            num_channels: 1,
            queue_size_ms: 100,
        }
    }
}

/// A published video track.
pub struct VideoTrack {
    engine: &'static Engine,
    _publication: OwnedHandle,
    _track: OwnedHandle,
    source: OwnedHandle,
    width: u32,
    height: u32,
    sid: String,
    codec: VideoCodecChoice,
    /// Stops the sender-statistics watcher when the track goes.
    _stats: tokio_util::sync::DropGuard,
}

/// The engine's outbound-rtp statistics of the published video (its sender side, WebRTC's names), totals since
/// publishing: how much loss the server reported (NACKs, keyframe requests) and what the sender resent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundVideoStats {
    pub mime_type: String,
    pub encoder: String,
    pub ssrc: u32,
    /// The retransmission (RTX) stream's SSRC; 0 when none was negotiated.
    pub rtx_ssrc: u32,
    pub packets_sent: u64,
    pub retransmitted_packets_sent: u64,
    pub nack_count: u32,
    pub pli_count: u32,
    pub fir_count: u32,
    pub key_frames_encoded: u32,
}

/// A published audio track.
pub struct AudioTrack {
    engine: &'static Engine,
    _publication: OwnedHandle,
    _track: OwnedHandle,
    source: OwnedHandle,
    sample_rate: u32,
    num_channels: u32,
    sid: String,
}

impl Room {
    /// Create a camera source, and publish it as track `name` (no simulcast, capped fps and bitrate).
    ///
    /// Publish video before audio: through livekit-server (v1.11), a video track published after an audio
    /// track was negotiated VP8 although H.264 was asked for, and `codec()` would not say so
    /// (`tests/e2e/livekit.rs`).
    pub async fn publish_video(
        &self,
        name: &'static str,
        opts: VideoPublishOptions,
    ) -> Result<VideoTrack, LiveKitError> {
        let engine = self.engine();
        if opts.width == 0
            || opts.height == 0
            || !opts.width.is_multiple_of(2)
            || !opts.height.is_multiple_of(2)
        {
            return Err(LiveKitError::InvalidFrame(format!(
                "video size {}x{} must be even",
                opts.width, opts.height
            )));
        }
        let resp = engine.request(ffi_request::Message::NewVideoSource(
            NewVideoSourceRequest {
                r#type: proto::VideoSourceType::VideoSourceNative as i32,
                resolution: VideoSourceResolution {
                    width: opts.width,
                    height: opts.height,
                },
                is_screencast: Some(false),
            },
        ))?;
        let ffi_response::Message::NewVideoSource(r) = resp else {
            return Err(LiveKitError::UnexpectedResponse {
                request: "new_video_source",
            });
        };
        let source = engine.own(r.source.handle.id);
        let resp = engine.request(ffi_request::Message::CreateVideoTrack(
            CreateVideoTrackRequest {
                name: name.into(),
                source_handle: source.id(),
            },
        ))?;
        let ffi_response::Message::CreateVideoTrack(r) = resp else {
            return Err(LiveKitError::UnexpectedResponse {
                request: "create_video_track",
            });
        };
        let track = engine.own(r.track.handle.id);
        let mut codecs = vec![opts.codec];
        if opts.codec == VideoCodecChoice::H264 {
            codecs.push(VideoCodecChoice::Vp8);
        }
        let mut last_err = None;
        for codec in codecs {
            let options = TrackPublishOptions {
                video_encoding: Some(VideoEncoding {
                    max_bitrate: opts.max_bitrate,
                    max_framerate: opts.max_framerate,
                }),
                video_codec: Some(codec.proto()),
                simulcast: Some(false),
                source: Some(proto::TrackSource::SourceCamera as i32),
                degradation_preference: Some(opts.degradation as i32),
                ..Default::default()
            };
            match publish(self, track.id(), options, name).await {
                Ok((publication, sid)) => {
                    tracing::info!(%sid, ?codec, width = opts.width, height = opts.height, fps = opts.max_framerate,
                        bitrate = opts.max_bitrate, "published {name}");
                    let stop = tokio_util::sync::CancellationToken::new();
                    tokio::spawn(watch_outbound(engine, name, track.id(), stop.clone()));
                    return Ok(VideoTrack {
                        engine,
                        _publication: publication,
                        _track: track,
                        source,
                        width: opts.width,
                        height: opts.height,
                        sid,
                        codec,
                        _stats: stop.drop_guard(),
                    });
                }
                Err(e) => {
                    tracing::warn!(?codec, error = %e, "publishing {name} failed");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or(LiveKitError::Publish {
            track: name,
            reason: "no codec".into(),
        }))
    }

    /// Create a microphone source and publish it as track `name`.
    pub async fn publish_audio(
        &self,
        name: &'static str,
        opts: AudioPublishOptions,
    ) -> Result<AudioTrack, LiveKitError> {
        let engine = self.engine();
        let resp = engine.request(ffi_request::Message::NewAudioSource(
            NewAudioSourceRequest {
                r#type: proto::AudioSourceType::AudioSourceNative as i32,
                options: Some(proto::AudioSourceOptions::default()),
                sample_rate: Some(opts.sample_rate),
                num_channels: Some(opts.num_channels),
                queue_size_ms: Some(opts.queue_size_ms),
                ..Default::default()
            },
        ))?;
        let ffi_response::Message::NewAudioSource(r) = resp else {
            return Err(LiveKitError::UnexpectedResponse {
                request: "new_audio_source",
            });
        };
        let source = engine.own(r.source.handle.id);
        let resp = engine.request(ffi_request::Message::CreateAudioTrack(
            CreateAudioTrackRequest {
                name: name.into(),
                source_handle: source.id(),
            },
        ))?;
        let ffi_response::Message::CreateAudioTrack(r) = resp else {
            return Err(LiveKitError::UnexpectedResponse {
                request: "create_audio_track",
            });
        };
        let track = engine.own(r.track.handle.id);
        let options = TrackPublishOptions {
            source: Some(proto::TrackSource::SourceMicrophone as i32),
            ..Default::default()
        };
        let (publication, sid) = publish(self, track.id(), options, name).await?;
        tracing::info!(%sid, sample_rate = opts.sample_rate, channels = opts.num_channels, "published {name}");
        Ok(AudioTrack {
            engine,
            _publication: publication,
            _track: track,
            source,
            sample_rate: opts.sample_rate,
            num_channels: opts.num_channels,
            sid,
        })
    }
}

async fn publish(
    room: &Room,
    track: u64,
    options: TrackPublishOptions,
    name: &'static str,
) -> Result<(OwnedHandle, String), LiveKitError> {
    let engine = room.engine();
    let resp = engine.request(ffi_request::Message::PublishTrack(PublishTrackRequest {
        local_participant_handle: room.local_handle(),
        track_handle: track,
        options,
        ..Default::default()
    }))?;
    let ffi_response::Message::PublishTrack(r) = resp else {
        return Err(LiveKitError::UnexpectedResponse {
            request: "publish_track",
        });
    };
    let reply = engine
        .wait_reply(r.async_id, "publish_track", PUBLISH_TIMEOUT)
        .await?;
    let ffi_event::Message::PublishTrack(cb) = reply else {
        return Err(LiveKitError::UnexpectedResponse {
            request: "publish_track",
        });
    };
    match cb.message {
        Some(publish_track_callback::Message::Publication(p)) => {
            Ok((engine.own(p.handle.id), p.info.sid))
        }
        Some(publish_track_callback::Message::Error(e)) => Err(LiveKitError::Publish {
            track: name,
            reason: e,
        }),
        None => Err(LiveKitError::Publish {
            track: name,
            reason: "empty callback".into(),
        }),
    }
}

/// The outbound-rtp statistics of the video track `track` (its first outbound stream: the track is published
/// without simulcast), or `None` before the engine has one.
async fn outbound_video_stats(
    engine: &'static Engine,
    track: u64,
) -> Result<Option<OutboundVideoStats>, LiveKitError> {
    let resp = engine.request(ffi_request::Message::GetStats(GetStatsRequest {
        track_handle: track,
        request_async_id: None,
    }))?;
    let ffi_response::Message::GetStats(r) = resp else {
        return Err(LiveKitError::UnexpectedResponse {
            request: "get_stats",
        });
    };
    let reply = engine
        .wait_reply(r.async_id, "get_stats", Duration::from_secs(5))
        .await?;
    let ffi_event::Message::GetStats(cb) = reply else {
        return Err(LiveKitError::UnexpectedResponse {
            request: "get_stats",
        });
    };
    if let Some(e) = cb.error {
        return Err(LiveKitError::Request {
            request: "get_stats",
            reason: e,
        });
    }
    let mime_of = |codec_id: &str| {
        cb.stats.iter().find_map(|s| match &s.stats {
            Some(rtc_stats::Stats::Codec(c)) if c.rtc.id == codec_id => {
                Some(c.codec.mime_type.clone())
            }
            _ => None,
        })
    };
    Ok(cb.stats.iter().find_map(|s| match &s.stats {
        Some(rtc_stats::Stats::OutboundRtp(o)) => Some(OutboundVideoStats {
            mime_type: mime_of(&o.stream.codec_id).unwrap_or_default(),
            encoder: o.outbound.encoder_implementation.clone(),
            ssrc: o.stream.ssrc,
            rtx_ssrc: o.outbound.rtx_ssrc,
            packets_sent: o.sent.packets_sent,
            retransmitted_packets_sent: o.outbound.retransmitted_packets_sent,
            nack_count: o.outbound.nack_count,
            pli_count: o.outbound.pli_count,
            fir_count: o.outbound.fir_count,
            key_frames_encoded: o.outbound.key_frames_encoded,
        }),
        _ => None,
    }))
}

/// Reads the published video's sender statistics every [`STATS_EVERY`] until `stop`, and logs them the first
/// time and whenever the server reported loss or asked for a keyframe since the last line: how many NACKs the
/// sender got and how many packets it resent (none without an RTX stream) is what tells a viewer's freeze
/// under loss apart from a slow renderer.
async fn watch_outbound(
    engine: &'static Engine,
    name: &'static str,
    track: u64,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut logged: Option<OutboundVideoStats> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(STATS_EVERY) => {}
        }
        let s = match outbound_video_stats(engine, track).await {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "reading {name}'s sender statistics");
                continue;
            }
        };
        let moved = logged.as_ref().is_none_or(|l| {
            (l.nack_count, l.pli_count, l.fir_count) != (s.nack_count, s.pli_count, s.fir_count)
        });
        if moved {
            tracing::info!(
                mime = %s.mime_type,
                encoder = %s.encoder,
                ssrc = s.ssrc,
                rtx_ssrc = s.rtx_ssrc,
                packets_sent = s.packets_sent,
                retransmitted_packets_sent = s.retransmitted_packets_sent,
                nack_count = s.nack_count,
                pli_count = s.pli_count,
                fir_count = s.fir_count,
                key_frames_encoded = s.key_frames_encoded,
                "{name} sender stats"
            );
            logged = Some(s);
        }
    }
}

impl VideoTrack {
    pub fn sid(&self) -> &str {
        &self.sid
    }

    pub fn codec(&self) -> VideoCodecChoice {
        self.codec
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Capture one I420 frame: `data` holds the Y plane (width x height) then U and V
    /// (each ceil(width/2) x ceil(height/2)), tightly packed. `timestamp_us` is the frame's capture time.
    pub fn capture_i420(&self, data: &[u8], timestamp_us: i64) -> Result<(), LiveKitError> {
        let (w, h) = (self.width, self.height);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (y, c) = ((w * h) as usize, (cw * ch) as usize);
        if data.len() != y + 2 * c {
            return Err(LiveKitError::InvalidFrame(format!(
                "I420 {w}x{h} needs {} bytes, got {}",
                y + 2 * c,
                data.len()
            )));
        }
        let base = data.as_ptr() as u64;
        let components = vec![
            video_buffer_info::ComponentInfo {
                data_ptr: base,
                stride: w,
                size: y as u32,
            },
            video_buffer_info::ComponentInfo {
                data_ptr: base + y as u64,
                stride: cw,
                size: c as u32,
            },
            video_buffer_info::ComponentInfo {
                data_ptr: base + (y + c) as u64,
                stride: cw,
                size: c as u32,
            },
        ];
        self.capture(VideoBufferType::I420, base, w, components, timestamp_us)
    }

    /// Capture one RGBA frame (width x height x 4 bytes, tightly packed).
    pub fn capture_rgba(&self, data: &[u8], timestamp_us: i64) -> Result<(), LiveKitError> {
        let (w, h) = (self.width, self.height);
        if data.len() != (w * h * 4) as usize {
            return Err(LiveKitError::InvalidFrame(format!(
                "RGBA {w}x{h} needs {} bytes, got {}",
                w * h * 4,
                data.len()
            )));
        }
        let base = data.as_ptr() as u64;
        let components = vec![video_buffer_info::ComponentInfo {
            data_ptr: base,
            stride: w * 4,
            size: w * h * 4,
        }];
        self.capture(VideoBufferType::Rgba, base, w * 4, components, timestamp_us)
    }

    fn capture(
        &self,
        kind: VideoBufferType,
        base: u64,
        stride: u32,
        components: Vec<video_buffer_info::ComponentInfo>,
        timestamp_us: i64,
    ) -> Result<(), LiveKitError> {
        // The engine copies the frame during this synchronous request; `data` outlives it.
        let resp = self
            .engine
            .request(ffi_request::Message::CaptureVideoFrame(
                CaptureVideoFrameRequest {
                    source_handle: self.source.id(),
                    buffer: VideoBufferInfo {
                        r#type: kind as i32,
                        width: self.width,
                        height: self.height,
                        data_ptr: base,
                        stride: Some(stride),
                        components,
                    },
                    timestamp_us,
                    rotation: VideoRotation::VideoRotation0 as i32,
                    metadata: None,
                },
            ))?;
        match resp {
            ffi_response::Message::CaptureVideoFrame(_) => Ok(()),
            _ => Err(LiveKitError::UnexpectedResponse {
                request: "capture_video_frame",
            }),
        }
    }
}

/// Keeps captured samples alive until the engine confirms it read them; leaked if the wait is cancelled,
/// since the engine may still read them.
struct PinnedSamples(Option<Vec<i16>>);

impl Drop for PinnedSamples {
    fn drop(&mut self) {
        if let Some(v) = self.0.take() {
            std::mem::forget(v);
        }
    }
}

impl AudioTrack {
    pub fn sid(&self) -> &str {
        &self.sid
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn num_channels(&self) -> u32 {
        self.num_channels
    }

    /// Queue interleaved int16 samples at the track's rate and channel count; waits while the engine's
    /// queue is full, which paces the caller in real time.
    pub async fn capture(&self, samples: &[i16]) -> Result<(), LiveKitError> {
        let channels = self.num_channels.max(1) as usize;
        if samples.is_empty() || !samples.len().is_multiple_of(channels) {
            return Err(LiveKitError::InvalidFrame(format!(
                "{} samples do not divide into {channels} channels",
                samples.len()
            )));
        }
        let mut pinned = PinnedSamples(Some(samples.to_vec()));
        let ptr = pinned.0.as_ref().map_or(0, |v| v.as_ptr() as u64);
        let resp = self.engine.request(ffi_request::Message::CaptureAudioFrame(
            CaptureAudioFrameRequest {
                source_handle: self.source.id(),
                buffer: AudioFrameBufferInfo {
                    data_ptr: ptr,
                    num_channels: self.num_channels,
                    sample_rate: self.sample_rate,
                    samples_per_channel: (samples.len() / channels) as u32,
                },
                ..Default::default()
            },
        ));
        let async_id = match resp {
            Ok(ffi_response::Message::CaptureAudioFrame(r)) => r.async_id,
            Ok(_) => {
                pinned.0.take(); // the engine did not take the buffer
                return Err(LiveKitError::UnexpectedResponse {
                    request: "capture_audio_frame",
                });
            }
            Err(e) => {
                pinned.0.take();
                return Err(e);
            }
        };
        let reply = self
            .engine
            .wait_reply(async_id, "capture_audio_frame", Duration::from_secs(5))
            .await?;
        pinned.0.take(); // the engine is done with the buffer: free it normally
        match reply {
            ffi_event::Message::CaptureAudioFrame(cb) => match cb.error {
                Some(e) => Err(LiveKitError::Capture(e)),
                None => Ok(()),
            },
            _ => Err(LiveKitError::UnexpectedResponse {
                request: "capture_audio_frame",
            }),
        }
    }

    /// Drop audio queued in the engine (on `lk.clear_buffer`).
    pub fn clear(&self) -> Result<(), LiveKitError> {
        self.engine
            .request(ffi_request::Message::ClearAudioBuffer(
                ClearAudioBufferRequest {
                    source_handle: self.source.id(),
                },
            ))
            .map(|_| ())
    }
}
