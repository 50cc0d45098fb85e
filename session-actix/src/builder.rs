//! [`SessionLayerBuilder`]: every setting, its default, and the original utility's name.

use std::{net::IpAddr, sync::Arc, time::Duration};

use crate::shared::Shared;

use actix_session::config::CookieContentSecurity;
use actix_web::cookie::{Key, SameSite};
use session_core::{
    binding::{BindingKey, BindingPolicy},
    client_ip::ForwardedHeader,
    lifecycle::{Policy, RotationKey, Sessions, SessionsConfig, TheftResponse, UserKey},
    store::CleanupPolicy,
    Clock, Store, SystemClock,
};

use crate::{
    codec::CookieCodec,
    config_error::ConfigError,
    info::CookieInfo,
    keys::derive_key,
    settings::{cookie_attributes, Settings},
    storage::{Backend, CookieOnly, Storage},
    SessionLayer,
};

/// The default of [`SessionLayerBuilder::max_sessions_per_user`].
pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 50;

/// The default of [`SessionLayerBuilder::max_record_bytes`]: 64 KiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;

/// Builds a [`SessionLayer`]. Made by [`SessionLayer::builder`] or
/// [`SessionLayer::cookie_only`].
///
/// # Settings of the original utility
///
/// | original              | here                                               | default |
/// |-----------------------|----------------------------------------------------|---------|
/// | `cookie_name`         | [`cookie_name`](Self::cookie_name)                 | `"session"` |
/// | `session_expire_time` | [`idle_timeout`](Self::idle_timeout) (sliding)     | 2 hours |
/// | `clean_check_percent` | [`clean_check_percent`](Self::clean_check_percent) | 5 % |
/// | `integrate_flash`     | [`integrate_flash`](Self::integrate_flash)         | on |
/// | `check_ip`            | [`check_ip`](Self::check_ip)                       | off |
/// | `check_user_agent`    | [`check_user_agent`](Self::check_user_agent)       | on |
/// | `set_cookie_expires`  | [`persistent_cookie`](Self::persistent_cookie)     | on |
/// | `session_token_ttl`   | [`token_rotation`](Self::token_rotation)           | 15 minutes |
///
/// # How the defaults were chosen
///
/// Where safety and convenience disagree, safety wins and convenience is one call away:
/// cookies are `Secure`, `HttpOnly`, `SameSite=Lax` and encrypted; sessions end after 2 hours
/// idle and 24 hours in all; ids rotate every 15 minutes. IP binding is off because
/// legitimate clients change addresses (mobile networks, dual-stack); User-Agent binding is
/// on because a legitimate browser does not change it mid-session.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use actix_web::cookie::Key;
/// use session_actix::{store::MemoryStore, ConfigError, SessionLayer};
///
/// let layer = SessionLayer::builder(MemoryStore::new(), Key::generate())
///     .cookie_name("sid")
///     .idle_timeout(Duration::from_secs(30 * 60)) // session_expire_time
///     .check_ip(true)
///     .token_rotation(Duration::from_secs(5 * 60)) // session_token_ttl
///     .build()?;
///
/// // Contradictions are refused with what to change, not clamped.
/// let err = SessionLayer::builder(MemoryStore::new(), Key::generate())
///     .idle_timeout(Duration::from_secs(3600))
///     .absolute_timeout(Duration::from_secs(600))
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, ConfigError::AbsoluteShorterThanIdle { .. }));
/// # drop(layer);
/// # Ok::<(), ConfigError>(())
/// ```
#[must_use]
pub struct SessionLayerBuilder<S> {
    backend: Backend<S>,
    key: Key,
    previous_keys: Vec<Key>,
    cookie_name: String,
    cookie_secure: bool,
    cookie_http_only: bool,
    cookie_same_site: SameSite,
    cookie_domain: Option<String>,
    cookie_path: String,
    content_security: CookieContentSecurity,
    persistent_cookie: bool,
    idle_timeout: Duration,
    absolute_timeout: Option<Duration>,
    token_ttl: Option<Duration>,
    rotation_grace: Duration,
    clean_check_percent: u8,
    integrate_flash: bool,
    binding: BindingPolicy,
    trusted_proxies: Vec<(IpAddr, u8)>,
    forwarded_header: ForwardedHeader,
    max_record_bytes: usize,
    max_sessions_per_user: usize,
    theft: TheftResponse,
    clock: Arc<dyn Clock>,
}

impl<S> std::fmt::Debug for SessionLayerBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayerBuilder")
            .field("cookie_name", &self.cookie_name)
            .finish_non_exhaustive()
    }
}

impl<S: Store> SessionLayerBuilder<S> {
    pub(crate) fn new(backend: Backend<S>, key: Key) -> Self {
        Self {
            backend,
            key,
            previous_keys: Vec::new(),
            cookie_name: "session".to_owned(),
            cookie_secure: true,
            cookie_http_only: true,
            cookie_same_site: SameSite::Lax,
            cookie_domain: None,
            cookie_path: "/".to_owned(),
            content_security: CookieContentSecurity::Private,
            persistent_cookie: true,
            idle_timeout: Duration::from_secs(2 * 60 * 60),
            absolute_timeout: Some(Duration::from_secs(24 * 60 * 60)),
            token_ttl: Some(Duration::from_secs(15 * 60)),
            rotation_grace: Duration::from_secs(30),
            clean_check_percent: CleanupPolicy::default().percent(),
            integrate_flash: true,
            binding: BindingPolicy {
                check_user_agent: true,
                ..BindingPolicy::default()
            },
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_sessions_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
            theft: TheftResponse::Log,
            clock: Arc::new(SystemClock),
        }
    }

    /// The session cookie's name (original: `cookie_name`). A `__Host-` name is checked to
    /// be `Secure`, `Path=/` and domain-less. Default: `"session"`.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// How long a session lives without requests (original: `session_expire_time`). Each
    /// request slides it; the stored expiry is refreshed at most about once per quarter of
    /// it, so an unchanged session does not cost a write per request. Default: 2 hours.
    #[doc(alias = "session_expire_time")]
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// How many sessions one user keeps at most ([`UserSessions`](crate::UserSessions)):
    /// attaching the user to one more ends the sessions they signed in with longest ago.
    /// `1` allows one session per user (a sign-in on a new device signs the old one out).
    /// Enforced at each sign-in: two sign-ins at the same instant may both find room, and
    /// the next one ends the excess. Default: 50 ([`DEFAULT_MAX_SESSIONS_PER_USER`]); an
    /// index costs about 0.7 KiB per session.
    pub fn max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_sessions_per_user = max;
        self
    }

    /// How long a session lives at most, however active. Must not be shorter than the idle
    /// timeout. Default: 24 hours.
    pub fn absolute_timeout(mut self, limit: Duration) -> Self {
        self.absolute_timeout = Some(limit);
        self
    }

    /// No absolute limit: an active session lives as long as it is used.
    pub fn no_absolute_timeout(mut self) -> Self {
        self.absolute_timeout = None;
        self
    }

    /// Run a bounded cleanup of expired sessions on this share of writes (original:
    /// `clean_check_percent`), deleting at most 1 000 records each time; `0` turns it off,
    /// over 100 is a [`ConfigError`]. Default: 5 %.
    pub fn clean_check_percent(mut self, percent: u8) -> Self {
        self.clean_check_percent = percent;
        self
    }

    /// Flash messages through [`Flash`](crate::Flash) (original: `integrate_flash`).
    /// Default: on.
    pub fn integrate_flash(mut self, on: bool) -> Self {
        self.integrate_flash = on;
        self
    }

    /// Bind each session to the client's IP prefix (original: `check_ip`); a request from
    /// another prefix gets a fresh session. Default: off (see the type's docs).
    pub fn check_ip(mut self, on: bool) -> Self {
        self.binding.check_ip = on;
        self
    }

    /// The prefix lengths compared by [`check_ip`](Self::check_ip). Default: /32 for IPv4,
    /// /64 for IPv6. Longer than 32 / 128 bits is a [`ConfigError`].
    pub fn ip_prefixes(mut self, ipv4: u8, ipv6: u8) -> Self {
        self.binding.ipv4_prefix = ipv4;
        self.binding.ipv6_prefix = ipv6;
        self
    }

    /// Bind each session to the User-Agent header (original: `check_user_agent`).
    /// Default: on.
    pub fn check_user_agent(mut self, on: bool) -> Self {
        self.binding.check_user_agent = on;
        self
    }

    /// What a likely theft does besides refusing the request: a client that does not
    /// match the session's binding, or a rotated-away id presented after its grace window.
    /// [`TheftResponse::Log`] (default) logs and counts it; [`TheftResponse::Revoke`] also
    /// ends the owner's session (the whole rotation family), so a stolen cookie is worth
    /// nothing once the theft shows, at the cost of signing the owner out on a false alarm.
    pub fn theft_response(mut self, response: TheftResponse) -> Self {
        self.theft = response;
        self
    }

    /// Keys the layer used before its current one, newest first: key rotation without
    /// ending sessions.
    ///
    /// A cookie made under a previous key is still accepted (so is a binding fingerprint
    /// or a rotated id's successor derived from one), and its session moves at once to a
    /// fresh id whose cookie, binding and successors are of the current key. The procedure,
    /// for several instances deployed one by one:
    ///
    /// 1. Deploy the new key here, as a previous key, on every instance (the old key stays
    ///    current). Nothing moves yet: no cookie is under the new key; but every instance
    ///    can now open what the next step issues.
    /// 2. Deploy the new key as the current one and the old one here. While instances of
    ///    both steps serve, a session may move to the new key on one and back on another
    ///    (a rotation each time); once all run step 2, every session in use moves to the
    ///    new key on its next request.
    /// 3. Wait at least one [`idle_timeout`](Self::idle_timeout), then deploy without the
    ///    old key. Sessions that still used it (idle since step 2, so expired unless the
    ///    idle timeout is longer than the wait) start afresh; none other is affected.
    ///
    /// With a single instance, steps 1 and 2 are one deployment.
    ///
    /// Each previous key costs nothing on requests under the current one, and one more
    /// decryption attempt (and HMAC) on a cookie that no key opens.
    pub fn previous_keys(mut self, keys: impl IntoIterator<Item = Key>) -> Self {
        self.previous_keys = keys.into_iter().collect();
        self
    }

    /// Proxies whose `X-Forwarded-For` is believed: `(address, prefix length)`. The client
    /// IP is the right-most forwarded address that is not itself a trusted proxy; a request
    /// from anyone else is judged by its peer address, whatever it forwards. Default: none.
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = (IpAddr, u8)>) -> Self {
        self.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// A persistent cookie with `Max-Age` = the idle timeout (`true`), or a browser-session
    /// cookie that the browser drops when it closes (`false`) (original:
    /// `set_cookie_expires`). Default: `true`.
    #[doc(alias = "set_cookie_expires")]
    pub fn persistent_cookie(mut self, persistent: bool) -> Self {
        self.persistent_cookie = persistent;
        self
    }

    /// Rotate the session id this often (original: `session_token_ttl`). The previous id
    /// keeps working for the [`rotation_grace`](Self::rotation_grace) window, which must be
    /// shorter. Server-side stores only. Default: 15 minutes.
    #[doc(alias = "session_token_ttl")]
    pub fn token_rotation(mut self, every: Duration) -> Self {
        self.token_ttl = Some(every);
        self
    }

    /// Keep one id for the session's whole life (`Session::renew()` still changes it).
    pub fn no_token_rotation(mut self) -> Self {
        self.token_ttl = None;
        self
    }

    /// How long a rotated-away id still resolves to its session, so concurrent requests of
    /// one page do not lose it. Default: 30 seconds.
    pub fn rotation_grace(mut self, grace: Duration) -> Self {
        self.rotation_grace = grace;
        self
    }

    /// The cookie's `Secure` attribute. **Warning**: `false` sends the session id over plain
    /// HTTP; only for local development. Default: `true`.
    pub fn cookie_secure(mut self, secure: bool) -> Self {
        self.cookie_secure = secure;
        self
    }

    /// The cookie's `HttpOnly` attribute. **Warning**: `false` lets scripts (and XSS) read
    /// the session id. Default: `true`.
    pub fn cookie_http_only(mut self, http_only: bool) -> Self {
        self.cookie_http_only = http_only;
        self
    }

    /// The cookie's `SameSite` attribute. Default: `Lax`.
    pub fn cookie_same_site(mut self, same_site: SameSite) -> Self {
        self.cookie_same_site = same_site;
        self
    }

    /// The cookie's `Domain` attribute, which also sends it to subdomains. Default: none
    /// (host-only).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie_domain = Some(domain.into());
        self
    }

    /// The cookie's `Path` attribute. Default: `"/"`.
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.cookie_path = path.into();
        self
    }

    /// Encrypt the cookie (`Private`) or only sign it (`Signed`). Server-side stores keep
    /// only an id in it either way; a cookie-only session keeps its data there, readable by
    /// the client when only signed. Default: `Private`.
    pub fn cookie_content_security(mut self, security: CookieContentSecurity) -> Self {
        self.content_security = security;
        self
    }

    /// Which header the [`trusted_proxies`](Self::trusted_proxies) write the client's
    /// address into; only that one is read (the other one, passed through by the proxy,
    /// is whatever the client sent). Default: `X-Forwarded-For`.
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.forwarded_header = header;
        self
    }

    /// The largest session a server-side store keeps, in bytes of its keys and JSON values.
    /// A request that would save more gets an error (an opaque `500`, details in the log)
    /// and nothing is stored, so one oversized value cannot slow every later request of
    /// the session. Default: 64 KiB ([`DEFAULT_MAX_RECORD_BYTES`]).
    pub fn max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max;
        self
    }

    /// The clock for timeouts and rotation. Default: the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for settings that contradict each other (a `__Host-` cookie that is
    /// not `Secure`, a zero idle timeout, ...).
    pub fn build(self) -> Result<SessionLayer<S>, ConfigError> {
        let name = &self.cookie_name;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
        {
            return Err(ConfigError::CookieName(name.clone()));
        }
        if name.starts_with("__Host-")
            && (!self.cookie_secure || self.cookie_path != "/" || self.cookie_domain.is_some())
        {
            return Err(ConfigError::HostPrefix);
        }
        if name.starts_with("__Secure-") && !self.cookie_secure {
            return Err(ConfigError::SecurePrefix);
        }
        if self.idle_timeout.is_zero() {
            return Err(ConfigError::ZeroDuration("idle_timeout"));
        }
        if self.max_sessions_per_user == 0 {
            return Err(ConfigError::ZeroDuration("max_sessions_per_user"));
        }
        if self.token_ttl.is_some_and(|ttl| ttl.is_zero()) {
            return Err(ConfigError::ZeroDuration("token_rotation"));
        }
        if let Some(absolute) = self.absolute_timeout {
            if absolute < self.idle_timeout {
                return Err(ConfigError::AbsoluteShorterThanIdle {
                    absolute,
                    idle: self.idle_timeout,
                });
            }
        }
        if self.clean_check_percent > 100 {
            return Err(ConfigError::CleanCheckPercent(self.clean_check_percent));
        }
        for (family, given, max) in [
            ("IPv4", self.binding.ipv4_prefix, 32),
            ("IPv6", self.binding.ipv6_prefix, 128),
        ] {
            if given > max {
                return Err(ConfigError::IpPrefix { family, given, max });
            }
        }
        if let Some(rotation) = self.token_ttl {
            if self.backend.is_server_side() && rotation <= self.rotation_grace {
                return Err(ConfigError::RotationShorterThanGrace {
                    rotation,
                    grace: self.rotation_grace,
                });
            }
        }
        for (what, value) in [
            ("path", Some(&self.cookie_path)),
            ("domain", self.cookie_domain.as_ref()),
        ] {
            if let Some(value) = value {
                if !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') || value.contains(';')
                {
                    return Err(ConfigError::CookieAttribute(what, value.clone()));
                }
            }
        }
        let server_side = self.backend.is_server_side();
        let rotation = self.token_ttl.filter(|_| server_side);
        let policy = Policy {
            idle_timeout: self.idle_timeout,
            absolute_timeout: self.absolute_timeout,
            rotation,
            theft: self.theft,
        };
        let kind = if server_side { "id" } else { "data" };
        let sealer_of = |key: &Key| {
            CookieCodec::new(key, &self.cookie_name, kind, self.content_security).into_sealer()
        };
        let sealer = sealer_of(&self.key);
        let previous_sealers = self.previous_keys.iter().map(sealer_of).collect();
        let previous_binding_keys = self
            .previous_keys
            .iter()
            .map(|key| BindingKey::new(&derive_key(key, b"binding")))
            .collect();
        let storage = match self.backend {
            Backend::Server(store) => Storage::Server(Sessions::new(
                store,
                SessionsConfig {
                    rotation: RotationKey::new(&derive_key(&self.key, b"rotation")),
                    users: UserKey::namespaced(&self.cookie_name),
                    previous_rotations: self
                        .previous_keys
                        .iter()
                        .map(|key| RotationKey::new(&derive_key(key, b"rotation")))
                        .collect(),
                    // A session under a previous key rotates to the current one.
                    rotates: rotation.is_some() || !self.previous_keys.is_empty(),
                    grace: self.rotation_grace,
                    idle_timeout: self.idle_timeout,
                    absolute_timeout: self.absolute_timeout,
                    max_user_sessions: self.max_sessions_per_user,
                    cleanup: CleanupPolicy::new(
                        self.clean_check_percent,
                        session_core::store::DEFAULT_CLEANUP_BATCH_SIZE,
                    ),
                    max_record_bytes: self.max_record_bytes,
                    theft: self.theft,
                },
            )),
            Backend::Cookie => Storage::Cookie,
        };
        let attributes = cookie_attributes(
            &self.cookie_path,
            self.cookie_domain.as_deref(),
            self.cookie_secure,
            self.cookie_http_only,
            self.cookie_same_site,
        );
        let cookie_info = Arc::new(CookieInfo {
            name: self.cookie_name.clone(),
            attributes: attributes.trim_start_matches("; ").to_owned(),
            max_age: self.persistent_cookie.then_some(self.idle_timeout),
            carries_id_only: server_side,
        });
        let settings = Settings {
            cookie_attributes: attributes,
            cookie_info,
            cookie_name: self.cookie_name,
            persistent_cookie: self.persistent_cookie,
            policy,
            integrate_flash: self.integrate_flash,
            binding: self.binding,
            trusted_proxies: self.trusted_proxies,
            forwarded_header: self.forwarded_header,
            binding_key: BindingKey::new(&derive_key(&self.key, b"binding")),
            previous_binding_keys,
            sealer,
            previous_sealers,
            clock: self.clock,
        };
        Ok(SessionLayer::from_parts(storage, settings))
    }
}

impl<S: Store> SessionLayer<S> {
    /// A builder for sessions kept in `store` (e.g. a
    /// [`TieredStore`](session_core::store::TieredStore)), with cookies encrypted under
    /// `key`.
    ///
    /// `key` must be at least 64 bytes of secret randomness (`Key::generate()`, or
    /// `Key::from` a secret loaded from configuration) and the same for every process of
    /// the application: the cookie's keys, binding fingerprints and rotation successors all
    /// derive from it.
    pub fn builder(store: S, key: Key) -> SessionLayerBuilder<S> {
        SessionLayerBuilder::new(Backend::Server(Arc::new(store)), key)
    }

    /// A layer over `store` with the default settings (see [`SessionLayerBuilder`]).
    ///
    /// Infallible: only settings a builder was given can be wrong.
    #[must_use]
    pub fn new(store: S, key: Key) -> Self {
        match Self::builder(store, key).build() {
            Ok(layer) => layer,
            Err(err) => unreachable!("the default settings are valid: {err}"),
        }
    }

    pub(crate) fn from_parts(storage: Storage<S>, settings: Settings) -> Self {
        Self::from_shared(Arc::new(Shared { storage, settings }))
    }
}

impl SessionLayer<CookieOnly> {
    /// A builder for cookie-only sessions: the data lives in the (encrypted) cookie.
    ///
    /// Binding checks, idle and absolute timeouts and flash messages work as with a
    /// server-side store. What cannot apply: server-side revocation (a copied cookie stays
    /// valid until it times out, as the server keeps nothing to delete), id rotation and its
    /// grace window (there is no id), and the 4 KiB cookie size limit bounds the data.
    pub fn cookie_only(key: Key) -> SessionLayerBuilder<CookieOnly> {
        SessionLayerBuilder::new(Backend::Cookie, key)
    }
}
