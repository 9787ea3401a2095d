//! A network path with delay and loss, for a kernel without `netem`: a UDP relay in the test's namespace that
//! stands where livekit-server's media port is advertised ([`RELAY_IP`], the server's `node_ip`), forwards each
//! packet to the server after a fixed delay and brings the answers back the same way, dropping a share of them
//! at random in each direction. Like a NAT, it gives each client a socket of its own towards the server.
//! Stopped on drop.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The address the relay answers on, in the test's namespace (next to `ROOM_IP`, on the same veth end).
pub const RELAY_IP: &str = "10.77.0.3";

/// The relay's sockets towards the server take their ports from here: below the kernel's ephemeral range, so
/// no client socket has one, and [`crate::netns::only_through_relay`] can tell the relay's packets apart.
pub const BACK_PORTS: std::ops::RangeInclusive<u16> = 7900..=7999;

/// How long a blocking receive waits before looking at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// What the relay does to the packets of one direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Impairment {
    pub delay: Duration,
    /// Share of packets dropped, in percent.
    pub loss_percent: u32,
}

/// Packets the relay forwarded and dropped, per direction.
#[derive(Debug, Default)]
pub struct Counters {
    pub to_server: AtomicU64,
    pub from_server: AtomicU64,
    pub dropped_to_server: AtomicU64,
    pub dropped_from_server: AtomicU64,
}

/// A packet waiting out its delay.
struct Due {
    at: Instant,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// The running relay.
pub struct DelayRelay {
    stop: Arc<AtomicBool>,
    pub counters: Arc<Counters>,
    threads: Vec<JoinHandle<()>>,
}

/// A tiny xorshift: which packets to drop, reproducibly, without a dependency.
struct Dice(u64);

impl Dice {
    fn drops(&mut self, percent: u32) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % 100 < u64::from(percent)
    }
}

/// Sends each packet of `rx` when its delay is over (a constant delay keeps them in order).
fn sender(rx: Receiver<Due>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for due in rx {
            if let Some(wait) = due.at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let _ = due.socket.send_to(&due.bytes, due.to);
        }
    })
}

impl DelayRelay {
    /// Adds [`RELAY_IP`] to the namespace's veth and relays `RELAY_IP:port` to `server` (the server's own
    /// RTC address), `up` applied to the packets towards the server, `down` to those coming back. The server
    /// is then reachable over UDP through the relay only, and not over ICE-TCP (`tcp_port`).
    pub fn start(
        port: u16,
        tcp_port: u16,
        server: SocketAddr,
        up: Impairment,
        down: Impairment,
    ) -> Self {
        crate::netns::add_address(RELAY_IP);
        crate::netns::only_through_relay(
            &server.ip().to_string(),
            server.port(),
            tcp_port,
            RELAY_IP,
            BACK_PORTS,
        );
        let front = UdpSocket::bind((RELAY_IP, port))
            .unwrap_or_else(|e| panic!("relay bind {RELAY_IP}:{port}: {e}"));
        let _ = front.set_read_timeout(Some(POLL));
        let front = Arc::new(front);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (up_tx, up_rx) = channel::<Due>();
        let (down_tx, down_rx) = channel::<Due>();
        let mut threads = vec![sender(up_rx), sender(down_rx)];
        let clients: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
        let front_reader = {
            let (stop, counters) = (stop.clone(), counters.clone());
            std::thread::spawn(move || {
                let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
                let mut buf = vec![0u8; 65_536];
                let mut backs = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, client)) = front.recv_from(&mut buf) else {
                        continue;
                    };
                    let towards = {
                        let mut map = clients.lock().unwrap_or_else(|p| p.into_inner());
                        map.entry(client)
                            .or_insert_with(|| {
                                let s = Arc::new(back_socket());
                                let _ = s.set_read_timeout(Some(POLL));
                                backs.push(back_reader(
                                    s.clone(),
                                    front.clone(),
                                    client,
                                    down,
                                    down_tx.clone(),
                                    stop.clone(),
                                    counters.clone(),
                                ));
                                s
                            })
                            .clone()
                    };
                    if dice.drops(up.loss_percent) {
                        counters.dropped_to_server.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    counters.to_server.fetch_add(1, Ordering::Relaxed);
                    let _ = up_tx.send(Due {
                        at: Instant::now() + up.delay,
                        socket: towards,
                        to: server,
                        bytes: buf[..n].to_vec(),
                    });
                }
                drop(up_tx);
                drop(down_tx);
                for b in backs {
                    let _ = b.join();
                }
            })
        };
        threads.push(front_reader);
        Self {
            stop,
            counters,
            threads,
        }
    }
}

/// A socket towards the server on a free port of [`BACK_PORTS`].
fn back_socket() -> UdpSocket {
    BACK_PORTS
        .clone()
        .find_map(|p| UdpSocket::bind((RELAY_IP, p)).ok())
        .unwrap_or_else(|| panic!("relay: no free port in {BACK_PORTS:?} on {RELAY_IP}"))
}

/// Brings the server's packets for `client` back through the front socket, `down` applied.
fn back_reader(
    socket: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    down: Impairment,
    tx: Sender<Due>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut dice = Dice(0xD1B5_4A32_D192_ED03 ^ u64::from(client.port()));
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, _)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if dice.drops(down.loss_percent) {
                counters.dropped_from_server.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            counters.from_server.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(Due {
                at: Instant::now() + down.delay,
                socket: front.clone(),
                to: client,
                bytes: buf[..n].to_vec(),
            });
        }
    })
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
