//! REGISTER for the registrar, behind digest authentication, and agent presence reaching the
//! engine. Domain layer, sans-IO.

use super::*;

/// The digest server's settings from the configuration.
pub(super) fn digest_config(config: &Config) -> DigestServerConfig {
    let mut digest = DigestServerConfig::new(config.sip.realm.clone());
    // Answers without qop cannot be protected against replay beyond one use; no softphone we serve
    // needs them.
    digest.allow_rfc2069 = false;
    digest.algorithms = config.sip.digest_algorithms.clone();
    digest.md5_only_user_agents = config.sip.md5_only_user_agents.clone();
    digest
}

impl Switchboard {
    pub(super) fn register(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        flow: Flow,
        sip: &mut Endpoint,
    ) {
        let agents = &self.agents;
        let lookup = |user: &str| -> Option<&Credential> {
            agents.iter().find(|a| a.user.eq_ignore_ascii_case(user)).map(|a| &a.credential)
        };
        let verified = self.digest.verify_request(now, request, ChallengeKind::Www, lookup);
        let user = match verified {
            Ok(user) => user,
            Err(failure) => {
                if !matches!(failure, crate::sip::auth::AuthFailure::Missing) {
                    self.reports.push(Report::AuthFailure {
                        reason: failure.reason(),
                        source: flow.remote,
                    });
                }
                let response = match failure.answer() {
                    AuthAnswer::Challenge { stale } => {
                        let credential = request
                            .headers
                            .to()
                            .ok()
                            .and_then(|to| to.uri.user().map(str::to_string))
                            .and_then(|u| {
                                self.agents
                                    .iter()
                                    .find(|a| a.user.eq_ignore_ascii_case(&u))
                                    .map(|a| a.credential.clone())
                            });
                        let algorithms =
                            self.digest.algorithms_for_request(request, credential.as_ref());
                        let tag = crate::sip::registrar::to_tag(request);
                        self.digest.challenge_response(
                            now,
                            request,
                            ChallengeKind::Www,
                            &algorithms,
                            stale,
                            Some(&tag),
                        )
                    }
                    AuthAnswer::BadRequest => {
                        let tag = crate::sip::registrar::to_tag(request);
                        Response::for_request(request, 400, Some(&tag))
                    }
                };
                return sip.respond(now, txn, response);
            }
        };
        let result = self.registrar.handle_register(now, request, flow, &user);
        sip.respond(now, txn, result.response);
        for presence in result.events {
            self.presence(now, presence);
        }
    }

    pub(super) fn presence(&mut self, now: Instant, presence: Presence) {
        let input = match &presence {
            Presence::LoggedIn { agent } => Input::AgentLoggedIn { agent: AgentId::new(agent) },
            Presence::LoggedOut { agent, .. } => {
                Input::AgentLoggedOut { agent: AgentId::new(agent) }
            }
        };
        let _ = self.engine.handle(now, input);
        self.reports.push(Report::Presence(presence));
    }
}
