//! The driver's side of saves: carries out players' game commands (save, load, slots, reset),
//! autosaves rooms, and finds a closed room's autosave to resume it. Each call runs as its own
//! task: the emulator's answers come from its process (blocking, on tokio's blocking pool) and
//! the store may be across the network; the driver's loop never waits for either.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use retrofarm_emulator::{Emulator, GameSave};
use retrofarm_proto::game::{GameCommand, GameReply, SlotInfo};
use retrofarm_proto::ids::RoomId;

use crate::saves::{SaveFile, SaveHeader, SaveKey, SaveStore};

/// How long the emulator may take to save or load.
const EMULATOR_TIMEOUT: Duration = Duration::from_secs(5);

/// A running room, as saving needs it.
#[derive(Debug, Clone)]
pub struct RoomGame {
    /// The room.
    pub room: RoomId,
    /// The game's name.
    pub game: String,
    /// The core's file name.
    pub core: String,
    /// Its emulator.
    pub emulator: Arc<Emulator>,
}

/// Carries out a player's command. Never fails: a failure is a [`GameReply::Failed`] that says
/// what happened; the game goes on as it was.
pub async fn command(store: Option<&SaveStore>, room: RoomGame, command: GameCommand) -> GameReply {
    let kind = command.kind().to_string();
    let result = match (command, store) {
        (GameCommand::Reset, _) => {
            blocking(room.emulator.clone(), |e| e.reset(EMULATOR_TIMEOUT)).await.map(|()| GameReply::Reset)
        }
        // The engine switches ports and counts reports itself; it never hands these here.
        (GameCommand::Port { .. }, _) => Err("ports are switched by the worker's engine".to_string()),
        (GameCommand::Report { .. }, _) => Err("reports are counted by the worker's engine".to_string()),
        (_, None) => Err("this server keeps no saves".to_string()),
        (GameCommand::Save { user, slot }, Some(store)) => {
            let key = SaveKey::Slot { user, game: room.game.clone(), slot };
            save(store, &room, &key).await.map(|()| GameReply::Saved { slot })
        }
        (GameCommand::Load { user, slot }, Some(store)) => {
            let key = SaveKey::Slot { user, game: room.game.clone(), slot };
            match store.get(&key).await {
                Ok(Some(found)) => load(&room, found.save).await.map(|()| GameReply::Loaded { slot }),
                Ok(None) => Err(format!("slot {slot} of {} is empty", room.game)),
                Err(e) => Err(e.to_string()),
            }
        }
        (GameCommand::Slots { user }, Some(store)) => match store.slots(&user, &room.game).await {
            Ok(slots) => {
                let slots = slots.into_iter().map(|(slot, saved_ms)| SlotInfo { slot, saved_ms }).collect();
                Ok(GameReply::Slots { slots })
            }
            Err(e) => Err(e.to_string()),
        },
    };
    result.unwrap_or_else(|message| GameReply::Failed { command: kind, message })
}

/// Saves the room's game under its own key: where it resumes from.
pub async fn autosave(store: &SaveStore, room: &RoomGame) -> Result<(), String> {
    save(store, room, &SaveKey::Room(room.room.clone())).await
}

/// The room's autosave, to resume it from; the error says why it cannot resume, for the player.
pub async fn find(store: Option<&SaveStore>, room: &RoomId) -> Result<SaveFile, String> {
    let gone = format!("room {room} does not exist (it may have ended)");
    let Some(store) = store else { return Err(gone) };
    match store.get(&SaveKey::Room(room.clone())).await {
        Ok(Some(found)) => Ok(found.save),
        Ok(None) => Err(format!("{gone} and has no save to resume from")),
        Err(e) => Err(format!("room {room} cannot resume: {e}")),
    }
}

/// Takes the game's state and battery RAM and writes them under `key`.
async fn save(store: &SaveStore, room: &RoomGame, key: &SaveKey) -> Result<(), String> {
    let GameSave { state, sram } = blocking(room.emulator.clone(), |e| e.save_game(EMULATOR_TIMEOUT)).await?;
    if state.is_none() && sram.is_none() {
        return Err(format!("the {} core can save neither its state nor battery RAM", room.core));
    }
    let created_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let header = SaveHeader { game: room.game.clone(), core: room.core.clone(), created_ms, state_len: 0, sram_len: 0 };
    store.put(key, &SaveFile { header, state, sram }).await.map_err(|e| e.to_string())
}

/// Loads a save into the running game, after checking it is of this game and core.
async fn load(room: &RoomGame, save: SaveFile) -> Result<(), String> {
    if save.header.game != room.game || save.header.core != room.core {
        return Err(format!(
            "that save is of {} on {}, this room plays {} on {}",
            save.header.game, save.header.core, room.game, room.core
        ));
    }
    let game = GameSave { state: save.state, sram: save.sram };
    blocking(room.emulator.clone(), move |e| e.load_game(&game, EMULATOR_TIMEOUT)).await
}

/// Runs `f` on the emulator on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    emulator: Arc<Emulator>,
    f: impl FnOnce(&Emulator) -> Result<T, retrofarm_emulator::Error> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(move || f(&emulator)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the emulator call failed: {e}")),
    }
}
