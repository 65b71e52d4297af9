//! The child's command line: built by the parent ([`ChildArgs::to_args`]) and parsed by the
//! child ([`ChildArgs::parse`]) from one definition, so the two cannot disagree.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::pacing::PacingMode;
use crate::synthetic::TestPattern;

/// Usage text of the `retrofarm-emulator` binary.
pub const USAGE: &str = "\
usage: retrofarm-emulator (--core CORE.so --rom ROM | --test-pattern WxH@FPS[:FORMAT[:RATE]])
                          [--shm-fd N --event-fd N [--control-fd N]] [--system-dir DIR] [--save-dir DIR]
                          [--sram FILE] [--sandbox off|auto|required] [--memory-mib N]
                          [--pacing paced|unpaced] [--frames N] [--slots N] [--pcm-frames N]
                          [--input-script 'FRAME PORT BUTTONS;...'] [--option KEY=VALUE]...
                          [--port-device PORT=DEVICE]... [--list-options]

Runs one libretro core and publishes frames, audio and counters into shared memory inherited
from the parent (--shm-fd, --event-fd), and answers save/load/reset requests on the inherited
socket --control-fd. --sram loads a battery save into the game before its first frame (a
missing file is a first start). The child sandboxes itself before loading the core
(--sandbox, default auto: files, network, processes; --memory-mib caps its address space;
docs/sandbox.md). Without the fds it runs standalone into private memory and
prints a summary (handy for measuring a core: --pacing unpaced --frames 3600).";

/// What produces the frames.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// A libretro core and a ROM.
    Core {
        /// Path of the core's shared object.
        core: PathBuf,
        /// Path of the ROM.
        rom: PathBuf,
    },
    /// The built-in test pattern.
    TestPattern(TestPattern),
}

/// Everything the child needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ChildArgs {
    /// The frame source.
    pub source: SourceSpec,
    /// Inherited memfd (None = standalone run with private memory).
    pub shm_fd: Option<i32>,
    /// Inherited eventfd (None = standalone).
    pub event_fd: Option<i32>,
    /// Inherited control socket (None = no commands from the parent).
    pub control_fd: Option<i32>,
    /// Battery save loaded into the game's save RAM before the first frame.
    pub sram: Option<PathBuf>,
    /// GET_SYSTEM_DIRECTORY.
    pub system_dir: PathBuf,
    /// GET_SAVE_DIRECTORY.
    pub save_dir: PathBuf,
    /// Paced or as fast as possible.
    pub pacing: PacingMode,
    /// Stop after this many `retro_run` calls.
    pub frame_limit: Option<u64>,
    /// Frame ring slots.
    pub frame_slots: u32,
    /// PCM ring capacity in stereo frames (power of two).
    pub pcm_capacity: u64,
    /// Scripted input (text form of [`crate::InputScript`]); replaces the input block.
    pub input_script: Option<String>,
    /// Core option overrides.
    pub options: Vec<(String, String)>,
    /// The device of a player port (1..=4) other than the RetroPad, by the name or number the
    /// core gives it (`--list-options` lists them): the SNES multitap, a PlayStation analog pad.
    pub port_devices: Vec<(u8, String)>,
    /// Print the core's declared options after loading, then exit (standalone use).
    pub list_options: bool,
    /// How the child sandboxes itself.
    pub sandbox: crate::sandbox::Mode,
    /// Address-space limit in MiB.
    pub memory_mib: Option<u64>,
}

impl ChildArgs {
    /// Default ring sizes and directories for `source`.
    pub fn new(source: SourceSpec) -> Self {
        Self {
            source,
            shm_fd: None,
            event_fd: None,
            control_fd: None,
            sram: None,
            system_dir: std::env::temp_dir(),
            save_dir: std::env::temp_dir(),
            pacing: PacingMode::Paced,
            frame_limit: None,
            frame_slots: 8,
            pcm_capacity: 1 << 16,
            input_script: None,
            options: Vec::new(),
            port_devices: Vec::new(),
            list_options: false,
            sandbox: crate::sandbox::Mode::Auto,
            memory_mib: None,
        }
    }

    /// The command line (without the program name).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |k: &str, v: &OsStr| {
            a.push(k.into());
            a.push(v.to_owned());
        };
        match &self.source {
            SourceSpec::Core { core, rom } => {
                push("--core", core.as_os_str());
                push("--rom", rom.as_os_str());
            }
            SourceSpec::TestPattern(p) => push("--test-pattern", OsStr::new(&p.to_string())),
        }
        if let Some(fd) = self.shm_fd {
            push("--shm-fd", OsStr::new(&fd.to_string()));
        }
        if let Some(fd) = self.event_fd {
            push("--event-fd", OsStr::new(&fd.to_string()));
        }
        if let Some(fd) = self.control_fd {
            push("--control-fd", OsStr::new(&fd.to_string()));
        }
        if let Some(p) = &self.sram {
            push("--sram", p.as_os_str());
        }
        push("--system-dir", self.system_dir.as_os_str());
        push("--save-dir", self.save_dir.as_os_str());
        push("--pacing", OsStr::new(&self.pacing.to_string()));
        if let Some(n) = self.frame_limit {
            push("--frames", OsStr::new(&n.to_string()));
        }
        push("--slots", OsStr::new(&self.frame_slots.to_string()));
        push("--pcm-frames", OsStr::new(&self.pcm_capacity.to_string()));
        if let Some(s) = &self.input_script {
            push("--input-script", OsStr::new(s));
        }
        for (k, v) in &self.options {
            push("--option", OsStr::new(&format!("{k}={v}")));
        }
        for (port, device) in &self.port_devices {
            push("--port-device", OsStr::new(&format!("{port}={device}")));
        }
        push("--sandbox", OsStr::new(&self.sandbox.to_string()));
        if let Some(n) = self.memory_mib {
            push("--memory-mib", OsStr::new(&n.to_string()));
        }
        if self.list_options {
            a.push("--list-options".into());
        }
        a
    }

    /// Parses a command line (without the program name).
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Self, String> {
        let mut it = args.into_iter();
        let (mut core, mut rom, mut pattern) = (None, None, None);
        let mut out = Self::new(SourceSpec::TestPattern(TestPattern::default()));
        fn text(v: &OsStr, key: &str) -> Result<String, String> {
            v.to_str().map(str::to_owned).ok_or_else(|| format!("{key}: not valid UTF-8"))
        }
        fn num<T: std::str::FromStr>(v: &OsStr, key: &str) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            text(v, key)?.parse().map_err(|e| format!("{key}: {e}"))
        }
        while let Some(key) = it.next() {
            let key = key.to_str().ok_or("arguments must be UTF-8 flags")?.to_owned();
            if key == "--help" || key == "-h" {
                return Err(USAGE.to_owned());
            }
            if key == "--list-options" {
                out.list_options = true;
                continue;
            }
            let value = it.next().ok_or_else(|| format!("{key} needs a value"))?;
            match key.as_str() {
                "--core" => core = Some(PathBuf::from(value)),
                "--rom" => rom = Some(PathBuf::from(value)),
                "--test-pattern" => pattern = Some(text(&value, &key)?.parse::<TestPattern>()?),
                "--shm-fd" => out.shm_fd = Some(num(&value, &key)?),
                "--event-fd" => out.event_fd = Some(num(&value, &key)?),
                "--control-fd" => out.control_fd = Some(num(&value, &key)?),
                "--sram" => out.sram = Some(value.into()),
                "--system-dir" => out.system_dir = value.into(),
                "--save-dir" => out.save_dir = value.into(),
                "--pacing" => out.pacing = text(&value, &key)?.parse()?,
                "--frames" => out.frame_limit = Some(num(&value, &key)?),
                "--slots" => out.frame_slots = num(&value, &key)?,
                "--pcm-frames" => out.pcm_capacity = num(&value, &key)?,
                "--sandbox" => out.sandbox = text(&value, &key)?.parse()?,
                "--memory-mib" => out.memory_mib = Some(num(&value, &key)?),
                "--input-script" => out.input_script = Some(text(&value, &key)?),
                "--option" => {
                    let kv = text(&value, &key)?;
                    let (k, v) = kv.split_once('=').ok_or("--option takes KEY=VALUE")?;
                    out.options.push((k.to_owned(), v.to_owned()));
                }
                "--port-device" => {
                    let pd = text(&value, &key)?;
                    let port = pd.split_once('=').and_then(|(p, d)| Some((p.parse::<u8>().ok()?, d)));
                    match port {
                        Some((port @ 1..=4, device)) if !device.is_empty() => {
                            out.port_devices.push((port, device.into()))
                        }
                        _ => return Err("--port-device takes PORT=DEVICE with PORT 1 to 4".into()),
                    }
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        out.source = match (core, rom, pattern) {
            (Some(core), Some(rom), None) => SourceSpec::Core { core, rom },
            (None, None, Some(p)) => SourceSpec::TestPattern(p),
            (Some(_), None, None) => return Err("--core needs --rom".into()),
            (None, Some(_), None) => return Err("--rom needs --core".into()),
            (None, None, None) => return Err("give --core and --rom, or --test-pattern".into()),
            _ => return Err("--test-pattern excludes --core/--rom".into()),
        };
        if out.shm_fd.is_some() != out.event_fd.is_some() {
            return Err("--shm-fd and --event-fd go together".into());
        }
        if out.control_fd.is_some() && out.shm_fd.is_none() {
            return Err("--control-fd needs --shm-fd and --event-fd (a standalone run takes no commands)".into());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_command_line() {
        let mut a =
            ChildArgs::new(SourceSpec::Core { core: "/c/mgba_libretro.so".into(), rom: "/r/Sushi The Cat.gba".into() });
        a.shm_fd = Some(3);
        a.event_fd = Some(4);
        a.control_fd = Some(5);
        a.sram = Some("/s/Sushi The Cat.srm".into());
        a.pacing = PacingMode::Unpaced;
        a.frame_limit = Some(300);
        a.frame_slots = 301;
        a.input_script = Some("60 1 8 0 0 0 0;66 1 0 0 0 0 0".into());
        a.options = vec![("mgba_skip_bios".into(), "ON".into())];
        a.port_devices = vec![(2, "Multitap".into())];
        a.list_options = true;
        a.sandbox = crate::sandbox::Mode::Required;
        a.memory_mib = Some(768);
        assert_eq!(ChildArgs::parse(a.to_args()).unwrap(), a);
        let t = ChildArgs::new(SourceSpec::TestPattern("64x32@120:rgb565".parse().unwrap()));
        assert_eq!(ChildArgs::parse(t.to_args()).unwrap(), t);
    }

    #[test]
    fn bad_command_lines_say_why() {
        let p = |v: &[&str]| ChildArgs::parse(v.iter().map(OsString::from));
        assert!(p(&[]).unwrap_err().contains("--core"));
        assert!(p(&["--core", "x.so"]).unwrap_err().contains("--rom"));
        assert!(p(&["--test-pattern", "8x8@60", "--frames", "many"]).unwrap_err().contains("--frames"));
        assert!(p(&["--test-pattern", "8x8@60", "--shm-fd", "3"]).unwrap_err().contains("together"));
        assert!(p(&["--test-pattern", "8x8@60", "--control-fd", "5"]).unwrap_err().contains("--shm-fd"));
        assert!(p(&["--bogus", "1"]).unwrap_err().contains("unknown"));
        assert!(p(&["--test-pattern", "8x8@60", "--pacing", "fast"]).is_err());
        assert!(p(&["--test-pattern", "8x8@60", "--sandbox", "strict"]).unwrap_err().contains("off, auto or required"));
        assert!(p(&["--help"]).unwrap_err().contains("usage"));
    }
}
