//! What a caller hears: the welcome prompt, hold audio and position announcements, as playlists for
//! the caller's media. Domain layer, sans-IO.

use super::*;

impl Switchboard {
    /// The caller hears the welcome prompt, then hold music.
    pub(super) fn start_prompts(
        &mut self,
        now: Instant,
        call: CallId,
        media: &mut dyn MediaControl,
    ) {
        let welcome = self.prompts.get(PROMPT_WELCOME).cloned();
        let welcome_ms = welcome.as_ref().map_or(0, |p| p.duration_ms());
        let mut playlist = Playlist::new();
        if let Some(w) = welcome {
            playlist = playlist.once(w);
        }
        if let Some(hold) = self.prompts.get(PROMPT_HOLD).cloned() {
            playlist = playlist.looped(hold);
        }
        media.play(call, playlist);
        self.prompt_ends.insert((now + Duration::from_millis(welcome_ms), call));
    }

    /// The hold loop, after the caller's position when `position` is given.
    pub(super) fn hold_audio(
        &mut self,
        call: CallId,
        position: Option<u32>,
        media: &mut dyn MediaControl,
    ) {
        let mut playlist = Playlist::new();
        if let Some(p) = position.and_then(|n| self.prompts.get(&format!("position-{n}")).cloned())
        {
            playlist = playlist.once(p);
        }
        if let Some(hold) = self.prompts.get(PROMPT_HOLD).cloned() {
            playlist = playlist.looped(hold);
        }
        media.play(call, playlist);
    }
}
