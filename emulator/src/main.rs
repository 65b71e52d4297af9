//! `retrofarm-emulator`: the per-room child process. See `retrofarm_emulator::args::USAGE`.

use std::process::ExitCode;

use retrofarm_emulator::args::{ChildArgs, USAGE};

fn main() -> ExitCode {
    let args = match ChildArgs::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) if e == USAGE => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("retrofarm-emulator: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let standalone = args.shm_fd.is_none();
    if !standalone {
        // A terminal's Ctrl-C reaches the whole process group: the worker saves its rooms as it
        // stops, which needs their emulators alive. A child ends with its parent anyway.
        retrofarm_emulator::ignore_interrupts();
    }
    match retrofarm_emulator::child::run(args) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(s)) => {
            if standalone {
                let wall = s.wall.as_secs_f64();
                println!(
                    "frames {} runs {} in {:.3} s ({:.1} fps); emulation {:.1} us/frame (wall), {:.1} us/frame CPU; late {} reanchors {}; \
                     {}x{} {:?} @ {} fps, {} Hz audio",
                    s.frames,
                    s.runs,
                    wall,
                    s.runs as f64 / wall.max(1e-9),
                    s.mean_emulate_ns as f64 / 1000.0,
                    s.cpu.as_secs_f64() * 1e6 / s.runs.max(1) as f64,
                    s.late,
                    s.reanchors,
                    s.av.base_width,
                    s.av.base_height,
                    s.av.pixel_format,
                    s.av.fps,
                    s.av.sample_rate,
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("retrofarm-emulator: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
