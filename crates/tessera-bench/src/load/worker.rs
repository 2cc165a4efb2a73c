//! One request stream: calls of the run's scenario, one after another (at
//! `--rate`'s pace when capped), until the deadline or the request budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_client::{pb, ClientError, TesseraClient};
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::propagation::{event_key, Sent};
use super::report::Stats;
use super::setup::{self, garbage, issue_req, Tokens};
use super::{BenchArgs, Scenario, TokenMix};

/// What every stream of a run shares.
pub struct Shared {
    pub tokens: Tokens,
    pub mix: TokenMix,
    pub scenario: Scenario,
    pub deadline: Instant,
    pub max_requests: u64,
    /// Requests started, by every stream (the budget's counter).
    pub issued: AtomicU64,
    /// The next token to present, of `minted` or `subjects`.
    pub next_token: AtomicU64,
    pub run_id: String,
    /// `--subject`: the one subject of every session, if given.
    pub subject: Option<String>,
    pub sent: Sent,
    /// `revoke --sessions`: (index in `tokens.sessions`, unix ns) of each
    /// Revoke that returned OK.
    pub returned: std::sync::Mutex<Vec<(usize, u128)>>,
    pub per_worker_interval: Option<Duration>,
}

/// What one call came to.
enum Outcome {
    /// Answered: its latency counts from this instant.
    Ok(Instant),
    /// Failed with this code.
    Failed(String),
    /// Already recorded in the stats (a refusal meant, a refresh's own
    /// timing, a failed untimed setup call).
    Recorded,
}

pub struct Worker {
    id: usize,
    client: TesseraClient,
    health: HealthClient<Channel>,
    shared: Arc<Shared>,
    stats: Stats,
    refresh_token: String,
    seq: u64,
}

/// The gRPC code of a failed call, as the report counts errors (the SDK's
/// [`ClientError::code`]: the refusals it folds into `SessionEnded` are
/// `Unauthenticated` on the wire).
fn code(e: &ClientError) -> String {
    format!("{:?}", e.code())
}

impl Worker {
    pub fn new(
        id: usize,
        channel: &Channel,
        args: &BenchArgs,
        shared: Arc<Shared>,
    ) -> Result<Self, String> {
        Ok(Worker {
            id,
            client: setup::client(channel.clone(), &args.api_key)?,
            health: HealthClient::new(channel.clone()),
            shared,
            stats: Stats::default(),
            refresh_token: String::new(),
            seq: 0,
        })
    }

    pub async fn run(mut self) -> Stats {
        let mut next_at = Instant::now();
        loop {
            let s = &self.shared;
            if Instant::now() >= s.deadline
                || s.issued.fetch_add(1, Ordering::Relaxed) >= s.max_requests
            {
                break;
            }
            if let Some(iv) = s.per_worker_interval {
                tokio::time::sleep_until(next_at.into()).await;
                next_at += iv;
            }
            self.seq += 1;
            let op = match s.scenario {
                Scenario::Mixed => match self.seq % 100 {
                    0..=89 => Scenario::Verify,
                    90..=94 => Scenario::Refresh,
                    95..=98 => Scenario::Issue,
                    _ => Scenario::Revoke,
                },
                s => s,
            };
            match self.call(op).await {
                Outcome::Ok(t0) => self.stats.latency(t0.elapsed()),
                Outcome::Failed(code) => self.stats.error(code),
                Outcome::Recorded => {}
            }
        }
        self.stats
    }

    /// The run's `--subject`, or `own` without one.
    fn subject_or(&self, own: String) -> String {
        self.shared.subject.clone().unwrap_or(own)
    }

    async fn call(&mut self, op: Scenario) -> Outcome {
        let t0 = Instant::now();
        let result = match op {
            Scenario::Verify => return self.verify().await,
            Scenario::Issue => {
                let fresh = format!("bench-{}-{}-{}", self.shared.run_id, self.id, self.seq);
                let subject = self.subject_or(fresh);
                self.client.issue(issue_req(subject)).await.map(|_| ())
            }
            Scenario::Refresh => return self.refresh().await,
            Scenario::Revoke => return self.revoke().await,
            Scenario::Exchange => self.exchange().await,
            Scenario::Echo | Scenario::Mixed => {
                let check = HealthCheckRequest {
                    service: String::new(),
                };
                return match self.health.check(check).await {
                    Ok(_) => Outcome::Ok(t0),
                    Err(e) => Outcome::Failed(format!("{:?}", e.code())),
                };
            }
        };
        match result {
            Ok(()) => Outcome::Ok(t0),
            Err(e) => Outcome::Failed(code(&e)),
        }
    }

    async fn verify(&mut self) -> Outcome {
        let t0 = Instant::now();
        let s = &self.shared;
        let n = s.next_token.fetch_add(1, Ordering::Relaxed);
        let minted = &s.tokens.minted;
        let access_token = match s.mix {
            _ if minted.is_empty() => s.tokens.hot.clone(),
            TokenMix::Flood if n % 2 == 1 => garbage(&minted[0], n),
            TokenMix::Flood => minted[(n / 2) as usize % minted.len()].clone(),
            _ => minted[n as usize % minted.len()].clone(),
        };
        let r = self
            .client
            .verify(pb::VerifyRequest {
                access_token,
                ..Default::default()
            })
            .await;
        match r {
            Ok(_) => Outcome::Ok(t0),
            // A flood's garbage is meant to fail.
            Err(_) if s.mix == TokenMix::Flood && n % 2 == 1 => {
                self.stats.latency(t0.elapsed());
                self.stats.refused += 1;
                Outcome::Recorded
            }
            Err(e) => Outcome::Failed(format!("{:?}", e.code())),
        }
    }

    /// Rotate this stream's session (opened by an untimed Issue when it has
    /// none, or its last rotation failed).
    async fn refresh(&mut self) -> Outcome {
        if self.refresh_token.is_empty() {
            match self
                .client
                .issue(issue_req(self.subject_or(format!(
                    "bench-r-{}-{}",
                    self.shared.run_id, self.id
                ))))
                .await
            {
                Ok(pair) => self.refresh_token = pair.refresh_token,
                Err(e) => return Outcome::Failed(code(&e)),
            }
        }
        let t0 = Instant::now();
        let r = self
            .client
            .refresh_request(pb::RefreshRequest {
                refresh_token: self.refresh_token.clone(),
                ..Default::default()
            })
            .await;
        let elapsed = t0.elapsed();
        match r {
            Ok(pair) => {
                self.refresh_token = pair.refresh_token;
                self.stats.latency(elapsed);
                Outcome::Recorded
            }
            Err(e) => {
                self.refresh_token.clear();
                Outcome::Failed(code(&e))
            }
        }
    }

    /// "Log out everywhere" of a subject with a live session: every call is
    /// a new event. A subject logged out holds nothing until it signs in
    /// again (revoking it again is a no-op without an event), so each Revoke
    /// follows an Issue of its own, outside the timed call (server CPU per
    /// request counts both).
    async fn revoke(&mut self) -> Outcome {
        if !self.shared.tokens.sessions.is_empty() {
            return self.revoke_session().await;
        }
        let subject = format!("bench-rv-{}-{}", self.shared.run_id, self.id);
        if let Err(e) = self.client.issue(issue_req(subject.clone())).await {
            return Outcome::Failed(code(&e));
        }
        let t0 = Instant::now();
        let target = pb::revoke_request::Target::Subject(pb::SubjectRef {
            tenant: "bench".into(),
            subject: subject.clone(),
        });
        let r = self
            .client
            .revoke(pb::RevokeRequest {
                target: Some(target),
                ..Default::default()
            })
            .await;
        match r {
            Ok(cursor) => {
                let key = event_key(&cursor, "bench", &subject);
                self.shared
                    .sent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, Instant::now());
                Outcome::Ok(t0)
            }
            Err(e) => Outcome::Failed(code(&e)),
        }
    }

    /// `--sessions`: the next one, by id; when it returned, on the wall
    /// clock, for another process to compare with its own.
    async fn revoke_session(&mut self) -> Outcome {
        let s = &self.shared;
        let n = s.next_token.fetch_add(1, Ordering::Relaxed) as usize;
        let Some(sid) = s.tokens.sessions.get(n) else {
            return Outcome::Recorded;
        };
        let t0 = Instant::now();
        let r = self
            .client
            .revoke(pb::RevokeRequest {
                target: Some(pb::revoke_request::Target::SessionId(sid.clone())),
                ..Default::default()
            })
            .await;
        let unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        match r {
            Ok(_) => {
                s.returned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((n, unix_ns));
                Outcome::Ok(t0)
            }
            Err(e) => Outcome::Failed(code(&e)),
        }
    }

    async fn exchange(&mut self) -> Result<(), ClientError> {
        let s = &self.shared;
        let n = s.next_token.fetch_add(1, Ordering::Relaxed);
        let subjects = &s.tokens.subjects;
        let subject_token = subjects[n as usize % subjects.len()].clone();
        self.client
            .exchange(pb::ExchangeRequest {
                subject_token,
                audience: vec!["bench-downstream".into()],
                scopes: vec!["read".into()],
                ..Default::default()
            })
            .await
            .map(|_| ())
    }
}
