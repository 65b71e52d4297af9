//! What the child does with each request, against any [`Game`], free of I/O except for the
//! battery-save file read at start-up.

use std::path::Path;

use super::wire::{Reply, Request};
use crate::libretro::SaveRamError;

/// What the control commands need from a running game (a libretro session or the test
/// pattern). Only called between frames.
pub trait Game {
    /// The serialized state, None if it cannot be saved.
    fn save_state(&mut self) -> Option<Vec<u8>>;
    /// Restores a state; false if refused.
    fn load_state(&mut self, data: &[u8]) -> bool;
    /// The live battery RAM, None if the game has none.
    fn save_ram(&mut self) -> Option<&mut [u8]>;
    /// Resets the game (the reset button).
    fn reset(&mut self);
}

/// The answer to a state the core refuses.
pub const REFUSED_STATE: &str = "the core refused the saved state: it is from another game or core version, or corrupt";

/// Carries out `request` and says how it went.
pub fn answer(game: &mut dyn Game, request: Request) -> Reply {
    match request {
        Request::Save => Reply::Saved { state: game.save_state(), sram: game.save_ram().map(|r| r.to_vec()) },
        Request::Load { state, sram } => match load(game, state.as_deref(), sram.as_deref()) {
            Ok(()) => Reply::Loaded,
            Err(reason) => Reply::Failed(reason),
        },
        Request::Reset => {
            game.reset();
            Reply::Done
        }
    }
}

/// Restores `state` then `sram`; on any refusal, the game is left as it was. The state goes
/// first because it may change the battery RAM's size (mGBA detects the save type).
fn load(game: &mut dyn Game, state: Option<&[u8]>, sram: Option<&[u8]>) -> Result<(), String> {
    let backup = match state {
        Some(_) => game.save_state(),
        None => None,
    };
    let restore = |game: &mut dyn Game| match &backup {
        Some(b) if game.load_state(b) => {}
        Some(_) => eprintln!("retrofarm-emulator: the core refused its own state while undoing a failed load"),
        None => eprintln!("retrofarm-emulator: the core cannot save states; a failed load could not be undone"),
    };
    if let Some(state) = state {
        if !game.load_state(state) {
            restore(game);
            return Err(REFUSED_STATE.to_owned());
        }
    }
    if let Some(sram) = sram {
        if let Err(e) = copy_save_ram(game.save_ram(), sram) {
            if state.is_some() {
                restore(game);
            }
            return Err(e.to_string());
        }
    }
    Ok(())
}

/// Copies `data` into the start of the battery RAM `ram`.
///
/// Data of exactly the RAM's size is the normal case. Shorter data is accepted too, and the rest
/// of the RAM is left as the core set it up: some cores report a provisional, larger size until
/// the game first touches its save (mGBA reports 128 KiB until it has detected the save type,
/// then e.g. 32 KiB of SRAM), so a save written later is shorter than the RAM of a freshly
/// started game. libretro frontends load save files the same way. Longer data cannot fit and
/// is refused.
pub fn copy_save_ram(ram: Option<&mut [u8]>, data: &[u8]) -> Result<(), SaveRamError> {
    match ram {
        None => Err(SaveRamError::NoSaveRam { given: data.len() }),
        Some(ram) if ram.len() < data.len() => Err(SaveRamError::TooLarge { given: data.len(), expected: ram.len() }),
        Some(ram) => {
            if ram.len() != data.len() {
                tracing::debug!(
                    given = data.len(),
                    size = ram.len(),
                    "battery RAM loaded into the start of a larger one"
                );
            }
            ram[..data.len()].copy_from_slice(data);
            Ok(())
        }
    }
}

/// Loads the battery save at `path` into the game (between `retro_load_game` and the first
/// `retro_run`). A missing file is a first start: Ok(None). Returns the bytes loaded.
pub fn load_save_ram_file(game: &mut dyn Game, path: &Path) -> Result<Option<usize>, String> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the battery save {}: {e}", path.display())),
    };
    copy_save_ram(game.save_ram(), &data).map_err(|e| {
        format!("cannot load the battery save {}: {e}; move the file away to start without it", path.display())
    })?;
    Ok(Some(data.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A game whose state is a counter and whose SRAM is a buffer; states must be 8 bytes.
    #[derive(Default)]
    struct Fake {
        n: u64,
        sram: Option<Vec<u8>>,
        resets: u32,
        loads: u32,
    }

    impl Game for Fake {
        fn save_state(&mut self) -> Option<Vec<u8>> {
            Some(self.n.to_le_bytes().to_vec())
        }
        fn load_state(&mut self, data: &[u8]) -> bool {
            self.loads += 1;
            // A sloppy core: scribbles on its state before deciding the data is bad.
            self.n = 999;
            match <[u8; 8]>::try_from(data) {
                Ok(b) => {
                    self.n = u64::from_le_bytes(b);
                    true
                }
                Err(_) => false,
            }
        }
        fn save_ram(&mut self) -> Option<&mut [u8]> {
            self.sram.as_deref_mut()
        }
        fn reset(&mut self) {
            self.resets += 1;
            self.n = 0;
        }
    }

    #[test]
    fn save_load_and_reset() {
        let mut g = Fake { n: 42, sram: Some(vec![1, 2, 3]), ..Fake::default() };
        let saved = answer(&mut g, Request::Save);
        assert_eq!(saved, Reply::Saved { state: Some(42u64.to_le_bytes().to_vec()), sram: Some(vec![1, 2, 3]) });
        let Reply::Saved { state, sram } = saved else { unreachable!() };
        g.n = 50;
        g.sram = Some(vec![9, 9, 9]);
        assert_eq!(answer(&mut g, Request::Load { state, sram }), Reply::Loaded);
        assert_eq!((g.n, g.sram.as_deref()), (42, Some(&[1u8, 2, 3][..])));
        assert_eq!(answer(&mut g, Request::Reset), Reply::Done);
        assert_eq!((g.n, g.resets), (0, 1));
        assert_eq!(answer(&mut g, Request::Load { state: None, sram: None }), Reply::Loaded);
    }

    #[test]
    fn a_refused_state_leaves_the_game_as_it_was() {
        let mut g = Fake { n: 7, sram: Some(vec![5; 4]), ..Fake::default() };
        let reply = answer(&mut g, Request::Load { state: Some(vec![1, 2, 3]), sram: Some(vec![6; 4]) });
        assert_eq!(reply, Reply::Failed(REFUSED_STATE.into()));
        assert_eq!((g.n, g.sram.as_deref()), (7, Some(&[5u8; 4][..])), "state restored, SRAM untouched");
    }

    #[test]
    fn battery_ram_of_the_wrong_size_is_refused_clearly() {
        let mut g = Fake { n: 7, sram: Some(vec![5; 4]), ..Fake::default() };
        let reply = answer(&mut g, Request::Load { state: Some(1u64.to_le_bytes().to_vec()), sram: Some(vec![6; 5]) });
        let Reply::Failed(why) = reply else { panic!("{reply:?}") };
        assert!(why.contains("5 bytes") && why.contains("only 4 bytes"), "{why}");
        assert_eq!((g.n, g.sram.as_deref()), (7, Some(&[5u8; 4][..])), "the state that went with it was undone");
        // Shorter is fine: it fills the start (a core's provisional size can be larger).
        assert_eq!(answer(&mut g, Request::Load { state: None, sram: Some(vec![6; 3]) }), Reply::Loaded);
        assert_eq!(g.sram.as_deref(), Some(&[6u8, 6, 6, 5][..]));
        let mut none = Fake::default();
        let reply = answer(&mut none, Request::Load { state: None, sram: Some(vec![0; 8]) });
        let Reply::Failed(why) = reply else { panic!("{reply:?}") };
        assert!(why.contains("no battery"), "{why}");
        assert_eq!(none.loads, 0);
    }

    #[test]
    fn battery_save_files_load_at_start() {
        let dir = std::env::temp_dir().join(format!("retrofarm-sram-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut g = Fake { sram: Some(vec![0; 4]), ..Fake::default() };
        assert_eq!(load_save_ram_file(&mut g, &dir.join("absent.srm")), Ok(None));
        std::fs::write(dir.join("ok.srm"), [1, 2, 3, 4]).unwrap();
        assert_eq!(load_save_ram_file(&mut g, &dir.join("ok.srm")), Ok(Some(4)));
        assert_eq!(g.sram.as_deref(), Some(&[1u8, 2, 3, 4][..]));
        std::fs::write(dir.join("big.srm"), [0; 6]).unwrap();
        let err = load_save_ram_file(&mut g, &dir.join("big.srm")).unwrap_err();
        assert!(err.contains("big.srm") && err.contains("6 bytes") && err.contains("move the file away"), "{err}");
        let err = load_save_ram_file(&mut g, &dir).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
