//! Counts in Redis, shared by every instance: GCRA in one Lua script, so a check is one
//! atomic round-trip (no read-modify-write race between instances) and Redis's own clock
//! decides (instances' clocks may differ). A counter lives only as long as it matters: it
//! expires when its bucket is full again.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{OnRedisError, Rate, RateStatus};
use crate::net::redact_url;
use crate::rejection::Rejection;

/// The key prefix of tokengate's counters.
const PREFIX: &str = "tokengate:rl:";

/// KEYS[1] the counter; ARGV[1] the emission interval and ARGV[2] the period, in
/// microseconds. The counter holds the theoretical arrival time (TAT) in microseconds of
/// Redis's clock. Answers {allowed, remaining, reset µs, retry-after µs}.
const GCRA: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((period - (new_tat - now)) / interval), new_tat - now, 0}
";

/// How long a check waits for Redis before it counts as unreachable.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

pub(super) struct RedisLimits {
    connection: ConnectionManager,
    script: redis::Script,
    on_error: OnRedisError,
}

impl RedisLimits {
    pub(super) async fn connect(url: &str, on_error: OnRedisError) -> Result<RedisLimits, String> {
        let client = redis::Client::open(url).map_err(|e| {
            format!(
                "`{}` is not a Redis URL ({e}); write redis://HOST:PORT/DB or rediss://… for TLS",
                redact_url(url)
            )
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| format!("cannot reach Redis at {}: {e}", redact_url(url)))?;
        Ok(RedisLimits {
            connection,
            script: redis::Script::new(GCRA),
            on_error,
        })
    }

    pub(super) async fn check(&self, key: &str, rate: Rate) -> Result<RateStatus, Rejection> {
        let period = u64::from(rate.period_secs()) * 1_000_000;
        let interval = (period / u64::from(rate.count())).max(1);
        let mut connection = self.connection.clone();
        let answer: Result<(i64, i64, i64, i64), _> = self
            .script
            .key(format!("{PREFIX}{key}"))
            .arg(interval)
            .arg(period)
            .invoke_async(&mut connection)
            .await;
        let micros = |us: i64| Duration::from_micros(u64::try_from(us).unwrap_or(0));
        match answer {
            Ok((allowed, remaining, reset, retry_after)) => Ok(RateStatus {
                rate,
                allowed: allowed == 1,
                remaining: u32::try_from(remaining).unwrap_or(0),
                reset: micros(reset),
                retry_after: micros(retry_after),
            }),
            Err(e) => self.unreachable(&e, rate),
        }
    }

    fn unreachable(&self, error: &redis::RedisError, rate: Rate) -> Result<RateStatus, Rejection> {
        match self.on_error {
            OnRedisError::Refuse => {
                tracing::warn!(target: "tokengate::rate_limit", error = %error, "Redis cannot count: refusing (503)");
                Err(Rejection::RateLimiterUnavailable)
            }
            OnRedisError::Allow => {
                tracing::warn!(target: "tokengate::rate_limit", error = %error, "Redis cannot count: admitting without a limit");
                Ok(RateStatus {
                    rate,
                    allowed: true,
                    remaining: rate.count(),
                    reset: Duration::ZERO,
                    retry_after: Duration::ZERO,
                })
            }
        }
    }
}
