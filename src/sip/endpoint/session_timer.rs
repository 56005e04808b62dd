//! RFC 4028 session timers on our dialogs (protocol layer, sans-IO): what a request's
//! Session-Expires asks of us, the headers our 2xx carries, and the refresh requests we send when we
//! are the refresher. The timers themselves live in each dialog's [`SessionTimer`].

use super::*;

/// What a request's session-timer headers ask of us (RFC 4028 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SessionAsk {
    /// No Session-Expires: no timer.
    Off,
    /// A request in the dialog without Session-Expires: keep the timer we have.
    Keep { uac_supports: bool },
    /// A timer of `interval` seconds; `we_refresh` when the UAC asked `refresher=uas`, or when it
    /// does not support the extension (a proxy added Session-Expires: §9 makes us refresh).
    Timer { interval: u32, we_refresh: bool, uac_supports: bool },
    /// Session-Expires below our Min-SE: 422.
    TooSmall,
}

/// A session refresh of ours in flight.
#[derive(Debug)]
pub(super) struct Refresh {
    pub(super) dialog: DialogId,
    /// A re-INVITE (an UPDATE otherwise): while it runs, the peer's re-INVITEs get 491.
    pub(super) invite: bool,
    /// Its final response arrived (a re-INVITE's entry stays for 2xx retransmissions).
    pub(super) answered: bool,
}

/// Reads what a request's session-timer headers ask (RFC 4028 §9). `refresh` for an in-dialog
/// request, where one without Session-Expires keeps the running timer.
pub(super) fn session_ask(request: &Request, refresh: bool) -> SessionAsk {
    let h = &request.headers;
    let has_timer = |tags: Vec<String>| tags.iter().any(|t| t.eq_ignore_ascii_case("timer"));
    let uac_supports =
        has_timer(h.supported().unwrap_or_default()) || has_timer(h.require().unwrap_or_default());
    match h.session_expires() {
        Ok(Some(se)) if uac_supports && se.delta < MIN_SE_SECS => SessionAsk::TooSmall,
        Ok(Some(se)) if uac_supports => SessionAsk::Timer {
            interval: se.delta,
            // §9: the UAC names the refresher; absent, we pick the UAC.
            we_refresh: se.refresher.as_deref() == Some("uas"),
            uac_supports,
        },
        // A proxy added Session-Expires for a UAC without the extension (§8.1): it cannot take
        // a 422, so a short interval is raised to our Min-SE, and we refresh (§9).
        Ok(Some(se)) => SessionAsk::Timer {
            interval: se.delta.max(MIN_SE_SECS),
            we_refresh: true,
            uac_supports,
        },
        _ if refresh => SessionAsk::Keep { uac_supports },
        _ => SessionAsk::Off,
    }
}

/// Puts the session-timer headers for `ask` into our 2xx (§9) and returns the timer that now
/// runs: started anew, since a 2xx to a refresh restarts it. `current` is the running timer.
pub(super) fn session_headers(
    now: Instant,
    ask: SessionAsk,
    current: Option<SessionTimer>,
    r: &mut Response,
) -> Option<SessionTimer> {
    let (interval, we_refresh, uac_supports) = match (ask, current) {
        (SessionAsk::Timer { interval, we_refresh, uac_supports }, _) => {
            (Duration::from_secs(u64::from(interval)), we_refresh, uac_supports)
        }
        (SessionAsk::Keep { uac_supports }, Some(t)) => (t.interval, t.we_refresh, uac_supports),
        _ => return None,
    };
    // `uac`/`uas` name the roles in this request, which the peer sent.
    let refresher = if we_refresh { "uas" } else { "uac" };
    r.headers.push(name::SESSION_EXPIRES, format!("{};refresher={refresher}", interval.as_secs()));
    // §9: Require: timer only towards a UAC that supports the extension.
    if uac_supports {
        r.headers.push(name::REQUIRE, "timer");
    }
    Some(SessionTimer::started(now, interval, we_refresh))
}

/// The session interval our INVITEs ask for (RFC 4028 §4 recommends 30 minutes); the agent's 2xx
/// may shorten it (never below its Min-SE) and names the refresher.
pub(super) const UAC_SESSION_EXPIRES: u32 = 1800;

/// The timer a 2xx to our INVITE starts (§7.2): none when the answer carries no Session-Expires
/// (the peer does not do session timers); we refresh unless it says `refresher=uas`.
pub(super) fn uac_timer(now: Instant, response: &Response) -> Option<SessionTimer> {
    let se = response.headers.session_expires().ok().flatten()?;
    let interval = Duration::from_secs(u64::from(se.delta.max(MIN_SE_SECS)));
    let we_refresh = !se.refresher.as_deref().is_some_and(|r| r.eq_ignore_ascii_case("uas"));
    Some(SessionTimer::started(now, interval, we_refresh))
}

impl Endpoint {
    pub(super) fn refuse_too_small(&mut self, now: Instant, id: TxnId, request: &Request) {
        // RFC 4028 §6: 422 carries our Min-SE so that the UAC can retry with a longer interval.
        let mut r = Response::for_request(request, 422, Some(&self.new_tag()));
        r.headers.push(name::MIN_SE, MIN_SE_SECS.to_string());
        self.respond(now, id, r);
    }

    /// Session timers (RFC 4028): refreshes we owe, and sessions nobody refreshed.
    pub(super) fn session_timers(&mut self, now: Instant) {
        let due: Vec<DialogId> = self
            .dialogs
            .iter()
            .filter(|(_, d)| d.session_timer.is_some_and(|t| t.next_deadline() <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let Some(d) = self.dialogs.get_mut(&id) else { continue };
            let Some(timer) = d.session_timer.as_mut() else { continue };
            if timer.bye_at <= now {
                self.end_dialog(now, &id, EndCause::SessionExpired);
                continue;
            }
            if timer.refresh_at.is_some_and(|r| r <= now) {
                let interval = timer.interval.as_secs();
                timer.refresh_at = None;
                self.send_refresh(now, &id, interval);
            }
        }
    }

    /// Sends our session refresh (§7.4, §10): an UPDATE without a body when the peer allows
    /// UPDATE (it leaves the session as it is), else a re-INVITE offering our last description
    /// unchanged. `refresher=uac` names us, the UAC of the refresh, as the refresher again. A
    /// re-INVITE waits while another INVITE runs in the dialog (§14.1).
    fn send_refresh(&mut self, now: Instant, id: &DialogId, interval: u64) {
        let invite_running = self.pending_acks.contains_key(id)
            || self
                .open_in_dialog
                .values()
                .any(|o| o.dialog == *id && o.request.method == Method::Invite);
        let Some(d) = self.dialogs.get_mut(id) else { return };
        let sdp = d.local_sdp.clone().filter(|_| !d.peer_allows_update);
        if sdp.is_some() && invite_running {
            if let Some(t) = d.session_timer.as_mut() {
                t.refresh_at = Some(now + Duration::from_secs(1));
            }
            return;
        }
        let method = if sdp.is_some() { Method::Invite } else { Method::Update };
        let branch = self.txns.new_branch();
        let mut request = d.request(method, &via_host(d.flow.local), &branch);
        let flow = d.flow;
        request.headers.push(name::SESSION_EXPIRES, format!("{interval};refresher=uac"));
        request.headers.push(name::SUPPORTED, "timer");
        self.contact_header(&mut request.headers, flow);
        let invite = sdp.is_some();
        if let Some(sdp) = sdp {
            request.headers.push(name::CONTENT_TYPE, "application/sdp");
            request.body = sdp;
        }
        if let Ok(txn) = self.txns.send_request(now, flow, request) {
            self.refreshes.insert(txn, Refresh { dialog: id.clone(), invite, answered: false });
        }
    }

    /// ACKs a 2xx to one of our re-INVITEs through its dialog (§13.2.2.4).
    pub(super) fn ack_2xx(&mut self, did: &DialogId, response: &Response) {
        let Some(d) = self.dialogs.get(did) else { return };
        let Ok(cseq) = response.headers.cseq() else { return };
        if cseq.method != Method::Invite || !(200..300).contains(&response.status) {
            return;
        }
        let branch = self.txns.new_branch();
        let ack = d.ack(cseq.seq, &via_host(d.flow.local), &branch);
        let flow = d.flow;
        self.send_request_raw(flow, &ack);
    }

    /// The answer to our session refresh.
    pub(super) fn refresh_response(&mut self, now: Instant, did: DialogId, response: &Response) {
        match response.status {
            200..=299 => {
                // §13.2.2.4: our re-INVITE's 2xx is ACKed by us (its answer changes nothing: we
                // offered the session as it was).
                self.ack_2xx(&did, response);
                let Some(d) = self.dialogs.get_mut(&did) else { return };
                let Some(timer) = d.session_timer else { return };
                // The 2xx may change the interval, or hand refreshing to the peer (`uas`, the UAS
                // of our UPDATE); without Session-Expires the peer turned the timer off (§7.2).
                d.session_timer = match response.headers.session_expires() {
                    Ok(Some(se)) => Some(SessionTimer::started(
                        now,
                        Duration::from_secs(u64::from(se.delta.max(MIN_SE_SECS))),
                        se.refresher.as_deref() != Some("uas"),
                    )),
                    Ok(None) => None,
                    Err(_) => Some(SessionTimer::started(now, timer.interval, true)),
                };
            }
            // §12.2.1.2: 481 and 408 end the dialog.
            408 | 481 => self.end_dialog(now, &did, EndCause::RefreshFailed),
            // Glare (§14.1): try again after a random 0–2 s (we did not make the Call-ID), or
            // 2.1–4 s when we did (our own INVITE's dialog).
            491 => {
                let n = self.next();
                let Some(d) = self.dialogs.get_mut(&did) else { return };
                let jitter = (self.salt ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(23);
                let base = if d.role == crate::sip::dialog::Role::Uac { 2100 } else { 0 };
                let spread = if base > 0 { 1900 } else { 2000 };
                if let Some(t) = d.session_timer.as_mut() {
                    t.refresh_at = Some(now + Duration::from_millis(base + jitter % spread));
                }
            }
            // Anything else leaves the session to run out (§10).
            _ => {}
        }
    }
}
