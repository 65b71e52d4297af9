//! Worker configuration: built-in defaults, then a TOML file, then environment variables and
//! command-line flags (see `retrofarm-worker --help` and docs/configuration.md).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

pub use crate::nvenc::NvencMode;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Stable worker id (defaults to the host name).
    pub id: String,
    /// Zone (region) this worker serves.
    pub zone: String,
    /// Coordinator QUIC address, `host:port`.
    pub coordinator: String,
    /// Name in the coordinator's certificate.
    pub server_name: String,
    /// Cluster PKI folder (ca.pem and this worker's certificate).
    pub pki_dir: PathBuf,
    /// File name (without .pem/.key) of this worker's certificate in `pki_dir`.
    pub cert_name: String,
    /// HTTP listen address (latency ping endpoint).
    pub http_listen: SocketAddr,
    /// Where Prometheus scrapes `/metrics` (plain HTTP): loopback or a private address, never
    /// the public one.
    pub metrics_listen: SocketAddr,
    /// URL browsers ping; defaults to `http://127.0.0.1:<http port>/ping` (`https://` with
    /// `tls_cert`).
    pub public_url: Option<String>,
    /// PEM certificate chain: with `tls_key`, the HTTP listener (`/ping`, `/healthz`,
    /// `/healthz`) speaks HTTPS only, so that pages served over HTTPS can ping it.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Extra delay added to each ping reply, in milliseconds (for tests and draining a host).
    pub ping_delay_ms: u64,
    /// UDP address of the WebRTC socket shared by all peers.
    pub rtc_listen: SocketAddr,
    /// Addresses announced as ICE host candidates (the host's public IPs); defaults to the
    /// listen address, or 127.0.0.1 when that is unspecified.
    pub rtc_ips: Vec<IpAddr>,
    /// Folder of ROMs, scanned with its subfolders (docs/systems.md, "The game list").
    pub games_dir: PathBuf,
    /// Seconds between scans of the games folder for added, removed or renamed games
    /// (SIGHUP scans at once); 0: only on SIGHUP.
    pub games_rescan_secs: u64,
    /// Folder of libretro cores; defaults to the project's `.deps/cores/...` if present, else
    /// `/usr/lib/x86_64-linux-gnu/libretro`.
    pub cores_dir: Option<PathBuf>,
    /// ROM extension → core file name.
    pub cores: BTreeMap<String, String>,
    /// Core options (libretro variables): keys set in every room, e.g.
    /// `nestopia_audio_type = "stereo"`, and tables of them for one core
    /// (`[core_options.mednafen_psx]`).
    pub core_options: CoreOptions,
    /// Core options for one game, by its name (`[game_options."Retrofarm Walk"]`); they win over
    /// `core_options`.
    pub game_options: BTreeMap<String, BTreeMap<String, String>>,
    /// Devices other than the RetroPad on player ports, by core ([`core_key`]) and port (1 to 4),
    /// named as the core names them (`retrofarm-emulator --list-options` lists them):
    /// `[port_devices.bsnes_mercury_performance]` `2 = "Multitap"` gives a SNES game five
    /// players' worth of pads (the first four play).
    pub port_devices: BTreeMap<String, BTreeMap<String, String>>,
    /// Folder of BIOS files, every room's system directory (read-only to the emulator); unset:
    /// each room's own folder, where no BIOS is.
    pub bios_dir: Option<PathBuf>,
    /// Highest video bitrate of each of a room's streams (H264, VP8), kbit/s; the bitrate too
    /// when congestion control is off.
    pub video_kbps: u32,
    /// Lowest video bitrate congestion control asks of a stream, kbit/s.
    pub video_min_kbps: u32,
    /// Each room's streams follow their viewers' links (bandwidth estimate, loss) between
    /// `video_min_kbps` and `video_kbps`.
    pub congestion_control: bool,
    /// Leave out frames identical to the one before (most retro games repeat many frames):
    /// viewers keep the picture, and a still picture is still sent ten times a second.
    pub skip_repeated_frames: bool,
    /// Encoder pool threads; default one per core.
    pub encoder_threads: Option<usize>,
    /// CPU cores rooms may use in all; default 90% of the host's cores.
    pub cpu_budget_cores: Option<f64>,
    /// Cost of one room in cores, assumed until rooms have been measured.
    pub room_cost_prior: f64,
    /// Most rooms this host runs at once, whatever the measured capacity.
    pub max_rooms: u32,
    /// Where frames are converted for the encoders: `auto` (a discrete or integrated GPU
    /// through Vulkan when there is one, else the CPU), `vulkan` (any Vulkan device, Mesa's
    /// CPU lavapipe included: for tests), or `off` (the CPU).
    pub gpu: GpuMode,
    /// How long the GPU stage waits for other rooms' frames before converting a batch, in
    /// microseconds: rooms do not tick together, and the wait adds to every frame's latency.
    pub gpu_batch_window_us: u64,
    /// Whole-number upscaling of every frame before encoding, 1 to 4 (nearest neighbour).
    pub video_scale: u32,
    /// The encoded picture's size as `[width, height]`, the scaled frame centred on black;
    /// unset: the scaled frame's own size.
    pub video_canvas: Option<[u32; 2]>,
    /// H264 on NVIDIA's NVENC: `auto` (when the driver's encode library loads and a device can
    /// be used) or `off`.
    pub nvenc: NvencMode,
    /// The NVENC library to load; unset: `libnvidia-encode.so.1` on the loader's path.
    pub nvenc_library: Option<PathBuf>,
    /// Most NVENC sessions (rooms encoding H264 on the GPU) at once; rooms beyond use openh264.
    pub nvenc_max_sessions: u32,
    /// Where players' saves and rooms' autosaves go: a directory, or `s3://bucket/prefix` (any
    /// S3-compatible store, credentials from the `AWS_*` variables); `off` keeps none.
    pub saves: String,
    /// Seconds between autosaves of every room (each room is also saved when it closes);
    /// 0: no autosave.
    pub autosave_secs: u64,
    /// Where each room gets its own folder (the core's save directory).
    pub rooms_dir: PathBuf,
    /// Seconds a stopping worker (SIGTERM: an upgrade, a reboot) waits for its running games to
    /// end by themselves before it closes them, saving each, and tells their players to reload;
    /// no new room starts meanwhile. Keep it below the unit's `TimeoutStopSec` minus 30 s.
    pub drain_secs: u64,
    /// How each emulator process is sandboxed: `auto` (every layer the kernel offers:
    /// Landlock file and TCP rules, a seccomp filter, resource limits; a warning names what is
    /// missing), `required` (a game does not start without every layer) or `off`.
    pub emulator_sandbox: String,
    /// Address-space limit of each emulator process in MiB; 0: none.
    pub emulator_memory_mib: u64,
    /// Seconds a room whose last player left keeps running for them to come back (a page
    /// reload, a network change) before it closes and is saved; 0: it closes at once.
    pub room_linger_secs: u64,
}

/// Where frames are converted (the `gpu` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GpuMode {
    /// A hardware GPU through Vulkan if the host has one, else the CPU.
    Auto,
    /// Any Vulkan device, Mesa's lavapipe (CPU) included.
    #[value(alias = "lavapipe")]
    #[serde(alias = "lavapipe")]
    Vulkan,
    /// The CPU only.
    Off,
}

impl GpuMode {
    /// The device to ask for; `None` for the CPU.
    pub fn choice(self) -> Option<retrofarm_gpu::DeviceChoice> {
        match self {
            GpuMode::Auto => Some(retrofarm_gpu::DeviceChoice::Hardware),
            GpuMode::Vulkan => Some(retrofarm_gpu::DeviceChoice::Any),
            GpuMode::Off => None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            id: default_id(),
            zone: "local".into(),
            coordinator: "127.0.0.1:8443".into(),
            server_name: "localhost".into(),
            pki_dir: PathBuf::from(".retrofarm/pki"),
            cert_name: "worker".into(),
            http_listen: "0.0.0.0:9000".parse().expect("valid"),
            metrics_listen: "127.0.0.1:9464".parse().expect("valid"),
            public_url: None,
            tls_cert: None,
            tls_key: None,
            ping_delay_ms: 0,
            rtc_listen: "0.0.0.0:8555".parse().expect("valid"),
            rtc_ips: vec![],
            games_dir: PathBuf::from("games"),
            cores_dir: None,
            cores: crate::library::default_cores(),
            // nestopia outputs sound on the left channel only unless told otherwise.
            // desmume reads the touch screen as a mouse unless told it is one.
            core_options: CoreOptions {
                all: [("nestopia_audio_type".to_string(), "stereo".to_string())].into_iter().collect(),
                per_core: [("desmume".to_string(), [("desmume_pointer_type".to_string(), "touch".to_string())].into())]
                    .into(),
            },
            game_options: BTreeMap::new(),
            port_devices: BTreeMap::new(),
            bios_dir: None,
            // GBA scenes full of detail stay above 35 dB PSNR at 2 Mbps; 256x240 needs no more.
            video_kbps: 2000,
            video_min_kbps: 150,
            congestion_control: true,
            skip_repeated_frames: true,
            encoder_threads: None,
            cpu_budget_cores: None,
            room_cost_prior: 0.1,
            max_rooms: 64,
            gpu: GpuMode::Auto,
            gpu_batch_window_us: 2000,
            video_scale: 1,
            video_canvas: None,
            nvenc: NvencMode::Auto,
            nvenc_library: None,
            nvenc_max_sessions: 32,
            saves: ".retrofarm/saves".into(),
            autosave_secs: 30,
            games_rescan_secs: 60,
            rooms_dir: std::env::temp_dir().join("retrofarm-rooms"),
            room_linger_secs: 15,
            drain_secs: 30,
            emulator_sandbox: "auto".into(),
            emulator_memory_mib: retrofarm_emulator::sandbox::DEFAULT_MEMORY_MIB,
        }
    }
}

fn default_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host: String = host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.').collect();
    if host.is_empty() {
        "worker".into()
    } else {
        host
    }
}

impl Config {
    /// The CPU budget for rooms, in cores.
    pub fn cpu_budget(&self) -> f64 {
        self.cpu_budget_cores
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()) as f64 * 0.9)
    }

    /// Reads `path` over the defaults; no path means defaults only.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is not a valid worker configuration", path.display()))
    }

    /// Checks what the types alone do not.
    pub fn check(&self) -> Result<()> {
        if self.video_min_kbps == 0 || self.video_min_kbps > self.video_kbps {
            anyhow::bail!(
                "video_min_kbps ({}) must be between 1 and video_kbps ({}): set both in kbit/s",
                self.video_min_kbps,
                self.video_kbps
            );
        }
        if self.public_url.as_deref().is_some_and(|u| u.trim().is_empty()) {
            anyhow::bail!(
                "public_url is empty: set the URL browsers ping (http(s)://HOST:PORT/ping), or leave it out for the default"
            );
        }
        self.sandbox_mode()?;
        for (core, ports) in &self.port_devices {
            if let Some(port) = ports.keys().find(|p| !matches!(p.parse::<u8>(), Ok(1..=4))) {
                anyhow::bail!("[port_devices.{core}] names port {port}: ports are 1 to 4");
            }
        }
        if let Some(dir) = self.bios_dir.as_ref().filter(|d| !d.is_dir()) {
            anyhow::bail!(
                "bios_dir {} is not a folder: create it and put the BIOS files there, or leave bios_dir out",
                dir.display()
            );
        }
        // A NaN or negative budget would make the capacity silently 0 rooms.
        for (key, cores) in
            [("cpu_budget_cores", self.cpu_budget_cores), ("room_cost_prior", Some(self.room_cost_prior))]
        {
            if let Some(c) = cores.filter(|c| !(c.is_finite() && *c > 0.0)) {
                anyhow::bail!("{key} is {c}: set a positive number of CPU cores");
            }
        }
        Ok(())
    }

    /// What decides each room's core options (`core_options`, `game_options`).
    pub fn room_options(&self) -> RoomOptions {
        RoomOptions {
            core: self.core_options.clone(),
            games: self.game_options.clone(),
            devices: self
                .port_devices
                .iter()
                .map(|(core, ports)| {
                    let ports = ports.iter().filter_map(|(p, d)| Some((p.parse().ok()?, d.clone()))).collect();
                    (core_key(core).to_string(), ports)
                })
                .collect(),
        }
    }

    /// `[core_options.X]` tables whose X is no core of `cores` (a typo, or a core no longer used).
    pub fn unused_core_option_tables(&self) -> Vec<String> {
        let used: Vec<&str> = self.cores.values().map(|c| core_key(c)).collect();
        self.core_options.per_core.keys().filter(|k| !used.contains(&core_key(k))).cloned().collect()
    }

    /// The emulator sandbox mode.
    pub fn sandbox_mode(&self) -> Result<retrofarm_emulator::sandbox::Mode> {
        self.emulator_sandbox.parse().map_err(|e: String| anyhow::anyhow!("emulator_sandbox: {e}"))
    }

    /// The emulator address-space limit (None: none).
    pub fn emulator_memory(&self) -> Option<u64> {
        Some(self.emulator_memory_mib).filter(|m| *m > 0)
    }

    /// The ping URL browsers use.
    pub fn ping_url(&self, bound: SocketAddr) -> String {
        let scheme = if self.tls_cert.is_some() { "https" } else { "http" };
        self.public_url.clone().unwrap_or_else(|| format!("{scheme}://127.0.0.1:{}/ping", bound.port()))
    }

    /// ICE host candidate addresses for a socket bound to `bound`.
    pub fn candidate_addrs(&self, bound: SocketAddr) -> Vec<SocketAddr> {
        if !self.rtc_ips.is_empty() {
            return self.rtc_ips.iter().map(|ip| SocketAddr::new(*ip, bound.port())).collect();
        }
        let ip = if bound.ip().is_unspecified() { IpAddr::from([127, 0, 0, 1]) } else { bound.ip() };
        vec![SocketAddr::new(ip, bound.port())]
    }
}

/// A core's name as option tables are keyed: `mednafen_psx_libretro.so`, `mednafen_psx_libretro`
/// and `mednafen_psx` are all `mednafen_psx`.
pub fn core_key(core: &str) -> &str {
    let stem = core.strip_suffix(".so").unwrap_or(core);
    stem.strip_suffix("_libretro").unwrap_or(stem)
}

/// The `core_options` table: plain keys are set in every room; a table is for one core.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreOptions {
    /// Set in every room.
    pub all: BTreeMap<String, String>,
    /// By core ([`core_key`]): set in the rooms of that core, over `all`.
    pub per_core: BTreeMap<String, BTreeMap<String, String>>,
}

/// The options every room gets (not the per-core tables): what tools running one known core
/// want (`bench`).
impl IntoIterator for CoreOptions {
    type Item = (String, String);
    type IntoIter = std::collections::btree_map::IntoIter<String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.all.into_iter()
    }
}

impl<'de> Deserialize<'de> for CoreOptions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// One entry of the table: a value, or a core's table.
        enum Entry {
            Value(String),
            Table(BTreeMap<String, String>),
        }
        impl<'de> Deserialize<'de> for Entry {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Entry;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a core option's value (a string), or a table of them for one core")
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Entry, E> {
                        Ok(Entry::Value(v.to_string()))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Entry, A::Error> {
                        Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Entry::Table)
                    }
                }
                d.deserialize_any(V)
            }
        }
        let mut out = CoreOptions::default();
        for (key, entry) in BTreeMap::<String, Entry>::deserialize(d)? {
            match entry {
                Entry::Value(v) => {
                    out.all.insert(key, v);
                }
                Entry::Table(t) => {
                    out.per_core.insert(core_key(&key).to_string(), t);
                }
            }
        }
        Ok(out)
    }
}

/// What decides a room's core options: `core_options` and `game_options`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomOptions {
    /// Every room's and each core's.
    pub core: CoreOptions,
    /// Each game's, by name.
    pub games: BTreeMap<String, BTreeMap<String, String>>,
    /// Each core's port devices ([`Config::port_devices`]), by [`core_key`].
    pub devices: BTreeMap<String, BTreeMap<u8, String>>,
}

impl RoomOptions {
    /// The options of a room running `game` on `core` (file name or short name): every room's,
    /// then the core's, then the game's, a later one replacing an earlier one's value.
    pub fn for_room(&self, core: &str, game: &str) -> Vec<(String, String)> {
        let mut options = self.core.all.clone();
        if let Some(t) = self.core.per_core.get(core_key(core)) {
            options.extend(t.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(t) = self.games.get(game) {
            options.extend(t.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        options.into_iter().collect()
    }

    /// The port devices of a room running `core`.
    pub fn devices_for(&self, core: &str) -> Vec<(u8, String)> {
        self.devices
            .get(core_key(core))
            .map(|ports| ports.iter().map(|(p, d)| (*p, d.clone())).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_devices_are_for_ports_1_to_4() {
        let ok: Config = toml::from_str("[port_devices.bsnes_mercury_performance]\n2 = \"Multitap\"").unwrap();
        ok.check().unwrap();
        assert_eq!(ok.room_options().devices_for("bsnes_mercury_performance_libretro.so"), [(2, "Multitap".into())]);
        for bad in ["5", "0", "two"] {
            let c: Config = toml::from_str(&format!("[port_devices.x]\n{bad} = \"Multitap\"")).unwrap();
            let e = c.check().unwrap_err().to_string();
            assert!(e.contains("ports are 1 to 4"), "{e}");
        }
    }

    #[test]
    fn defaults_file_and_candidates() {
        let c: Config = toml::from_str("zone = \"eu\"\nrtc_ips = [\"203.0.113.7\"]").unwrap();
        assert_eq!(c.zone, "eu");
        assert_eq!(c.coordinator, "127.0.0.1:8443");
        let bound: SocketAddr = "0.0.0.0:5000".parse().unwrap();
        assert_eq!(c.candidate_addrs(bound), vec!["203.0.113.7:5000".parse().unwrap()]);
        assert_eq!(Config::default().candidate_addrs(bound), vec!["127.0.0.1:5000".parse().unwrap()]);
        assert_eq!(Config::default().ping_url("0.0.0.0:9001".parse().unwrap()), "http://127.0.0.1:9001/ping");
        let tls: Config = toml::from_str("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"").unwrap();
        assert_eq!(tls.ping_url("0.0.0.0:9001".parse().unwrap()), "https://127.0.0.1:9001/ping");
        assert!(toml::from_str::<Config>("zonee = \"eu\"").is_err());
        let c: Config = toml::from_str("gpu = \"lavapipe\"\nvideo_scale = 2\nvideo_canvas = [640, 480]").unwrap();
        assert_eq!((c.gpu, c.video_scale, c.video_canvas), (GpuMode::Vulkan, 2, Some([640, 480])));
        assert_eq!(Config::default().gpu, GpuMode::Auto);
        assert!(toml::from_str::<Config>("gpu = \"cuda\"").is_err());
    }

    #[test]
    fn core_options_apply_to_every_room_then_per_core_then_per_game() {
        let c: Config = toml::from_str(
            r#"
            [cores]
            cue = "mednafen_psx"
            nes = "nestopia_libretro.so"
            [core_options]
            nestopia_audio_type = "stereo"
            shared = "all"
            [core_options.mednafen_psx]
            shared = "psx"
            beetle_psx_analog_toggle = "enabled"
            [core_options.nestopia_libretro]
            nestopia_overscan_v = "disabled"
            [core_options.old_core]
            x = "y"
            [game_options."Retrofarm Walk"]
            nestopia_overscan_v = "enabled"
            shared = "walk"
            "#,
        )
        .unwrap();
        c.check().unwrap();
        assert_eq!(c.core_options.all.len(), 2);
        assert_eq!(c.core_options.per_core.keys().collect::<Vec<_>>(), ["mednafen_psx", "nestopia", "old_core"]);
        let o = c.room_options();
        let get = |opts: Vec<(String, String)>, k: &str| opts.into_iter().find(|(key, _)| key == k).map(|(_, v)| v);
        let psx = o.for_room("mednafen_psx_libretro.so", "Some Disc");
        assert_eq!(get(psx.clone(), "shared").as_deref(), Some("psx"));
        assert_eq!(get(psx.clone(), "beetle_psx_analog_toggle").as_deref(), Some("enabled"));
        assert_eq!(get(psx, "nestopia_audio_type").as_deref(), Some("stereo"), "every room's keys too");
        let walk = o.for_room("nestopia_libretro.so", "Retrofarm Walk");
        assert_eq!(get(walk.clone(), "nestopia_overscan_v").as_deref(), Some("enabled"), "the game's wins");
        assert_eq!(get(walk.clone(), "shared").as_deref(), Some("walk"));
        assert_eq!(walk.len(), 3, "one value per key: {walk:?}");
        let other = o.for_room("nestopia_libretro.so", "Another");
        assert_eq!(get(other.clone(), "nestopia_overscan_v").as_deref(), Some("disabled"));
        assert_eq!(get(other, "shared").as_deref(), Some("all"));
        let gba = o.for_room("mgba_libretro.so", "Sushi");
        assert_eq!(gba.len(), 2, "no table for mgba: {gba:?}");
        assert_eq!(c.unused_core_option_tables(), vec!["old_core".to_string()]);
    }

    #[test]
    fn existing_core_option_files_still_load() {
        // A configuration written before per-core tables: a flat table, as before.
        let c: Config = toml::from_str("[core_options]\nnestopia_audio_type = \"mono\"\n").unwrap();
        assert_eq!(c.core_options.all.get("nestopia_audio_type").map(String::as_str), Some("mono"));
        assert!(c.core_options.per_core.is_empty() && c.game_options.is_empty() && c.bios_dir.is_none());
        // What tools taking every room's options get.
        let every: Vec<(String, String)> = Config::default().core_options.into_iter().collect();
        assert_eq!(every, vec![("nestopia_audio_type".to_string(), "stereo".to_string())]);
        // A value must be a string or a table.
        let e = toml::from_str::<Config>("[core_options]\nx = 1\n").unwrap_err().to_string();
        assert!(e.contains("a core option's value (a string), or a table of them for one core"), "{e}");
        let e = toml::from_str::<Config>("[game_options]\nWalk = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("expected a map"), "{e}");
    }

    #[test]
    fn bios_dir_must_be_a_folder() {
        let c: Config = toml::from_str("bios_dir = \"/nonexistent/bios\"").unwrap();
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("bios_dir /nonexistent/bios is not a folder"), "{e}");
        let dir = std::env::temp_dir();
        let c: Config = toml::from_str(&format!("bios_dir = {:?}", dir.display().to_string())).unwrap();
        c.check().unwrap();
        assert_eq!(c.bios_dir, Some(dir));
    }

    #[test]
    fn an_empty_public_url_is_refused() {
        // Found by fuzz/ (worker_config, the crashing input `'public_url'=''`): it passed the
        // check and became an empty ping URL, which browsers resolve to the coordinator's page.
        let c: Config = toml::from_str("'public_url'=''").unwrap();
        assert!(c.check().unwrap_err().to_string().contains("public_url is empty"));
        let c: Config = toml::from_str("public_url = \" \"").unwrap();
        assert!(c.check().is_err());
        let c: Config = toml::from_str("public_url = \"https://w1.example.org/ping\"").unwrap();
        c.check().unwrap();
    }

    #[test]
    fn cpu_figures_must_be_positive_numbers() {
        for bad in
            ["cpu_budget_cores = nan", "cpu_budget_cores = -1.0", "room_cost_prior = 0.0", "room_cost_prior = inf"]
        {
            let c: Config = toml::from_str(bad).unwrap();
            let e = c.check().unwrap_err().to_string();
            assert!(e.contains("positive number of CPU cores"), "{bad}: {e}");
        }
        let c: Config = toml::from_str("cpu_budget_cores = 1.5").unwrap();
        c.check().unwrap();
    }

    #[test]
    fn the_emulator_sandbox_is_on_by_default_and_its_mode_is_checked() {
        use retrofarm_emulator::sandbox::Mode;
        let c = Config::default();
        assert_eq!((c.sandbox_mode().unwrap(), c.emulator_memory()), (Mode::Auto, Some(1024)));
        let c: Config = toml::from_str("emulator_sandbox = \"required\"\nemulator_memory_mib = 0").unwrap();
        assert_eq!((c.sandbox_mode().unwrap(), c.emulator_memory()), (Mode::Required, None));
        let c: Config = toml::from_str("emulator_sandbox = \"strict\"").unwrap();
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("emulator_sandbox") && e.contains("off, auto or required"), "{e}");
    }
}
