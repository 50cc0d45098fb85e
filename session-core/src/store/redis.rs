//! [`RedisStore`]: sessions in Redis, one command per load and per save.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, Client, Script, Value};

use crate::{
    clock::{from_millis, to_millis},
    Cache, Clock, Record, Store, StoreError, SystemClock, TokenHash,
};

/// Sessions in Redis, over an auto-reconnecting [`ConnectionManager`].
///
/// Each record lives under `<prefix><token hash>`; the value is the record's expiry as 16 hex
/// digits of Unix milliseconds followed by the encoded [`Record`], and the key carries the
/// same absolute expiry (`PXAT`), so Redis drops expired sessions by itself and `cleanup`
/// has nothing to do.
///
/// | method   | Redis command                                  |
/// |----------|------------------------------------------------|
/// | `load`   | `GET`                                          |
/// | `create` | `SET … NX PXAT`                                |
/// | `update` | `SET … XX PXAT`                                |
/// | `put`    | `SET … PXAT`                                   |
/// | `touch`  | one script: `GETRANGE`, `SETRANGE`, `PEXPIREAT` |
/// | `delete` | `DEL`                                          |
///
/// `load` and `touch` also compare the stored expiry with the store's [`Clock`], so expiry
/// holds even where the clock and the Redis server disagree; `create` and `update` rely on
/// Redis's own expiry.
///
/// When Redis is unreachable every method fails fast with [`StoreError::Unavailable`]
/// (response timeout: 1 s by default) while the connection manager reconnects in the
/// background.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisStore`].
#[derive(Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    clock: Arc<dyn Clock>,
    response_timeout: Duration,
    connection_timeout: Duration,
}

/// The default key prefix of a [`RedisStore`].
pub const DEFAULT_PREFIX: &str = "session:";

impl RedisStoreBuilder {
    /// The prefix of every key this store writes. Default: `"session:"`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The clock that decides expiry on load. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long to wait for an answer before reporting Redis unavailable. Default: 1 s.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long to wait for a connection before reporting Redis unavailable. Default: 1 s.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Builds the store. The connection is made on first use, so an application can start
    /// while Redis is down. Must be called inside a Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`StoreError::Config`] if the URL is not a Redis URL.
    pub fn build(self) -> Result<RedisStore, StoreError> {
        let client =
            Client::open(self.url.as_str()).map_err(|err| StoreError::Config(err.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.connection_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|err| StoreError::Config(err.to_string()))?;
        Ok(RedisStore {
            conn,
            prefix: self.prefix.into(),
            clock: self.clock,
        })
    }
}

/// Width of the expiry prefix of every stored value.
const EXPIRY_DIGITS: usize = 16;

/// Moves a live key's expiry: rewrites the value's expiry digits in place and the key's
/// expiry, without sending the record back and forth. KEYS[1] key; ARGV: new digits, now
/// (ms), new expiry (ms).
const TOUCH_SCRIPT: &str = r"
local current = redis.call('GETRANGE', KEYS[1], 0, 15)
if current == '' or (tonumber(current, 16) or 0) <= tonumber(ARGV[2]) then
  return 0
end
redis.call('SETRANGE', KEYS[1], 0, ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
";

impl RedisStore {
    /// A builder for a store on the Redis server at `url` (e.g. `redis://127.0.0.1:6379`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            clock: Arc::new(SystemClock),
            response_timeout: Duration::from_secs(1),
            connection_timeout: Duration::from_secs(1),
        }
    }

    /// A store on the Redis server at `url` with the default settings.
    ///
    /// # Errors
    ///
    /// As [`RedisStoreBuilder::build`].
    pub fn new(url: impl Into<String>) -> Result<Self, StoreError> {
        Self::builder(url).build()
    }

    /// The Redis key of a session.
    #[must_use]
    pub fn redis_key(&self, key: &TokenHash) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 64);
        out.push_str(&self.prefix);
        out.push_str(key.as_str());
        out
    }

    fn value(record: &Record) -> Result<(Vec<u8>, u64), StoreError> {
        let expires_ms = to_millis(record.expires_at);
        let mut value = format!("{expires_ms:0EXPIRY_DIGITS$x}").into_bytes();
        value.extend_from_slice(&record.encode()?);
        Ok((value, expires_ms))
    }

    async fn set(
        &self,
        key: &TokenHash,
        record: &Record,
        condition: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (value, expires_ms) = Self::value(record)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.redis_key(key)).arg(value);
        if let Some(condition) = condition {
            cmd.arg(condition);
        }
        cmd.arg("PXAT").arg(expires_ms.max(1));
        let reply: Value = cmd.query_async(&mut self.conn.clone()).await?;
        Ok(!matches!(reply, Value::Nil))
    }
}

/// Splits a stored value into its expiry and record bytes.
fn split_value(value: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let (digits, rest) = value
        .split_at_checked(EXPIRY_DIGITS)
        .ok_or_else(|| StoreError::corrupt("stored value is shorter than its expiry prefix"))?;
    let expires_ms = std::str::from_utf8(digits)
        .ok()
        .and_then(|digits| u64::from_str_radix(digits, 16).ok())
        .ok_or_else(|| StoreError::corrupt("stored value has no valid expiry prefix"))?;
    Ok((expires_ms, rest))
}

impl Store for RedisStore {
    async fn load(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.redis_key(key))
            .query_async(&mut self.conn.clone())
            .await?;
        let Some(value) = value else {
            return Ok(None);
        };
        let (expires_ms, bytes) = split_value(&value)?;
        if expires_ms <= to_millis(self.clock.now()) {
            return Ok(None);
        }
        Record::decode(bytes, from_millis(expires_ms)).map(Some)
    }

    async fn create(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        self.set(key, record, Some("NX")).await
    }

    async fn update(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        self.set(key, record, Some("XX")).await
    }

    async fn touch(&self, key: &TokenHash, expires_at: SystemTime) -> Result<bool, StoreError> {
        let expires_ms = to_millis(expires_at);
        let touched: i64 = Script::new(TOUCH_SCRIPT)
            .key(self.redis_key(key))
            .arg(format!("{expires_ms:0EXPIRY_DIGITS$x}"))
            .arg(to_millis(self.clock.now()))
            .arg(expires_ms.max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(touched == 1)
    }

    async fn delete(&self, key: &TokenHash) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("DEL")
            .arg(self.redis_key(key))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn cleanup(&self, _limit: usize) -> Result<usize, StoreError> {
        // Redis expires keys by itself (PXAT on every write).
        Ok(0)
    }
}

impl Cache for RedisStore {
    async fn put(&self, key: &TokenHash, record: &Record) -> Result<(), StoreError> {
        self.set(key, record, None).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_value_rejects_garbage() {
        assert!(split_value(b"").unwrap_err().is_corrupt());
        assert!(split_value(b"zzzzzzzzzzzzzzzz{}").unwrap_err().is_corrupt());
        assert!(split_value("é".repeat(8).as_bytes())
            .unwrap_err()
            .is_corrupt());
        let (ms, rest) = split_value(b"00000000000000ff{}").unwrap();
        assert_eq!((ms, rest), (255, &b"{}"[..]));
        // The largest prefix is a valid (clamped) expiry, not a panic.
        let (ms, _) = split_value(b"ffffffffffffffff{}").unwrap();
        let _ = crate::clock::from_millis(ms);
    }
}
