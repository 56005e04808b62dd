//! What a caller hears: the welcome prompt, the urgent-lane menu, hold audio and position
//! announcements, as playlists for the caller's media. Domain layer, sans-IO.

use super::*;
use crate::media::prompt::names;

impl Switchboard {
    /// Replaces the prompts (a reload): new playlists use them, calls already playing keep theirs.
    pub fn set_prompts(&mut self, prompts: PromptSet) {
        self.prompts = prompts;
    }

    /// The caller hears the welcome prompt, then the urgent-lane menu ("press 1"), then hold music.
    /// The menu's window closes `menu_timeout` after the menu prompt ends; a caller who pressed
    /// nothing is queued then, in the normal lane ([`super::media_events`]).
    pub(super) fn start_prompts(
        &mut self,
        now: Instant,
        call: CallId,
        media: &mut dyn MediaControl,
    ) {
        let mut playlist = Playlist::new();
        let mut window = Duration::ZERO;
        if let Some(p) = self.prompts.get(names::WELCOME).cloned() {
            window += Duration::from_millis(p.duration_ms());
            playlist = playlist.once(p);
        }
        // A deployment without the menu prompt has no menu: the caller is queued after the welcome.
        if let Some(p) = self.prompts.get(names::URGENT_MENU).cloned() {
            window += Duration::from_millis(p.duration_ms()) + self.menu_timeout;
            playlist = playlist.once(p);
        }
        if let Some(hold) = self.prompts.get(PROMPT_HOLD).cloned() {
            playlist = playlist.looped(hold);
        }
        media.play(call, playlist);
        self.prompt_ends.insert((now + window, call));
    }

    /// The hold loop, after the caller's position when `position` is given, and then the
    /// estimated wait when the engine has one (rounded up to the next announced step; nothing is
    /// promised past the longest step or before any call was answered).
    pub(super) fn hold_audio(
        &mut self,
        call: CallId,
        position: Option<u32>,
        media: &mut dyn MediaControl,
    ) {
        let mut playlist = Playlist::new();
        if let Some(p) =
            position.and_then(names::position).and_then(|n| self.prompts.get(&n).cloned())
        {
            playlist = playlist.once(p);
        }
        let wait = position
            .and(self.engine.estimated_wait(call))
            .filter(|w| !w.is_zero())
            .and_then(|w| names::estimated_wait(w.as_secs()))
            .and_then(|n| self.prompts.get(&n).cloned());
        if let Some(w) = wait {
            playlist = playlist.once(w);
        }
        if let Some(hold) = self.prompts.get(PROMPT_HOLD).cloned() {
            playlist = playlist.looped(hold);
        }
        media.play(call, playlist);
    }
}
