//! Configuration: flags override environment variables, which override `twin.toml` in the working
//! directory, which overrides defaults (CONTRACT.md). `twin.toml` uses the variable names without
//! the `TWIN_` prefix, in lowercase (`listen = "0.0.0.0:8080"`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use twin_cluster::Rate;

/// A value that must never be printed (keys, passwords in URLs).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// An OpenAI-compatible server (chat or embeddings).
#[derive(Debug, Clone, Default)]
pub struct ModelServer {
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// `TWIN_JWT_SECRET`: an HS256 secret (at least 32 bytes). Set it or `private_key`, not both;
    /// with neither, a development Ed25519 key ring is kept in `<data_dir>/jwt-keys/`.
    pub secret: Option<Secret>,
    /// `TWIN_JWT_PRIVATE_KEY`: the Ed25519 signing key, PKCS#8 PEM text or the path of a PEM file.
    pub private_key: Option<Secret>,
    /// `TWIN_JWT_PUBLIC_KEY`: more Ed25519 public keys that still verify (keys rotated out, until
    /// their tokens expire), as PEM text or a file path; several `PUBLIC KEY` blocks may follow
    /// each other. The signing key's own public key always verifies and need not be listed.
    pub public_key: Option<String>,
    pub issuer: String,
    pub audience: String,
}

/// The REST API's rate limits (`twin_cluster::Rate` syntax: `20/s burst 40`).
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Per client address, before authentication (`TWIN_RATE_LIMIT_ADDRESS`).
    pub address: Rate,
    /// Per tenant, after authentication (`TWIN_RATE_LIMIT_TENANT`).
    pub tenant: Rate,
    /// Widget tickets per client address (`TWIN_RATE_LIMIT_TICKETS`), on top of the address budget:
    /// each ticket may start a new visitor, so this one is much smaller.
    pub tickets: Rate,
    /// Load balancers whose `X-Forwarded-For` is believed (`TWIN_TRUSTED_PROXIES`, comma-separated addresses).
    pub trusted_proxies: Vec<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub public_url: String,
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; unset means SQLite in the data dir.
    pub database_url: Option<Secret>,
    /// Set: this node is one of several sharing the database through Redis (docs/CLUSTER.md).
    pub redis_url: Option<Secret>,
    /// This node's id in a cluster (`TWIN_NODE_ID`); unset: the host name and a random suffix.
    pub node_id: Option<String>,
    /// The cluster's name (`TWIN_CLUSTER`): nodes with the same name and Redis form one cluster.
    /// Unset: derived from the database URL, so nodes of one database find each other and nodes
    /// of different databases never mix.
    pub cluster: Option<String>,
    /// How long a node's heartbeat keeps it a member (`TWIN_CLUSTER_LEASE_MS`, default 3000); a
    /// node that dies is replaced after about 1.25 times this.
    pub cluster_lease: Duration,
    pub qdrant_url: Option<String>,
    pub llm: ModelServer,
    pub embed: ModelServer,
    pub embed_model_path: Option<PathBuf>,
    pub telegram_api_base: String,
    pub whatsapp_api_base: String,
    /// The verify token of the shared WhatsApp endpoint's handshake (one Meta app, many creators).
    pub whatsapp_verify_token: Option<Secret>,
    pub jwt: JwtSettings,
    pub secret_key: Option<Secret>,
    pub limits: LimitSettings,
    pub log: String,
    /// Idle conversations are passivated after this long.
    pub idle_ttl: Duration,
    /// Live events a watcher of `/v1/live` may fall behind by before it is told it lagged (and
    /// sent a fresh snapshot). Not read from the environment; tests make it small.
    pub live_buffer: usize,
    /// How long shutdown waits for conversations and the writer.
    pub shutdown_grace: Duration,
    /// The first delay of the login throttle (`TWIN_LOGIN_THROTTLE_BASE_MS`, default 1000); each
    /// further failed login doubles it, up to 15 minutes.
    pub login_throttle_base: Duration,
    /// How long a widget chat ticket stays valid: 60 seconds. Not read from the environment or the
    /// file (the widget protocol fixes it); tests shorten it.
    pub widget_ticket_ttl: Duration,
}

/// Values given on the command line (they win over everything else).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

const KEYS: &[&str] = &[
    "listen",
    "public_url",
    "data_dir",
    "database_url",
    "redis_url",
    "node_id",
    "cluster",
    "cluster_lease_ms",
    "qdrant_url",
    "llm_base_url",
    "llm_model",
    "llm_api_key",
    "embed_base_url",
    "embed_model",
    "embed_api_key",
    "embed_model_path",
    "telegram_api_base",
    "whatsapp_api_base",
    "whatsapp_verify_token",
    "jwt_secret",
    "jwt_private_key",
    "jwt_public_key",
    "jwt_issuer",
    "jwt_audience",
    "secret_key",
    "rate_limit_address",
    "rate_limit_tenant",
    "rate_limit_tickets",
    "trusted_proxies",
    "log",
    "idle_ttl_secs",
    "shutdown_grace_secs",
    "login_throttle_base_ms",
];

/// Reads one environment variable.
type EnvLookup = Box<dyn Fn(&str) -> Option<String>>;

struct Sources {
    file: BTreeMap<String, String>,
    env: EnvLookup,
}

impl Sources {
    /// The value of `key`: environment variable `TWIN_<KEY>` first, then `twin.toml`.
    fn get(&self, key: &str) -> Option<String> {
        (self.env)(&format!("TWIN_{}", key.to_uppercase()))
            .filter(|v| !v.is_empty())
            .or_else(|| self.file.get(key).cloned())
    }
}

impl Settings {
    /// Reads `twin.toml` from the working directory (if present) and the process environment.
    pub fn load(overrides: &Overrides) -> anyhow::Result<Self> {
        let file = read_file(Path::new("twin.toml"))?;
        Self::from_sources(overrides, file, Box::new(|name| std::env::var(name).ok()))
    }

    /// Defaults only (plus overrides): what tests start from.
    pub fn defaults(overrides: &Overrides) -> anyhow::Result<Self> {
        Self::from_sources(overrides, BTreeMap::new(), Box::new(|_| None))
    }

    fn from_sources(overrides: &Overrides, file: BTreeMap<String, String>, env: EnvLookup) -> anyhow::Result<Self> {
        let s = Sources { file, env };
        let listen =
            overrides.listen.clone().or_else(|| s.get("listen")).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let public_url = s.get("public_url").unwrap_or_else(|| format!("http://{listen}"));
        let data_dir = overrides
            .data_dir
            .clone()
            .or_else(|| s.get("data_dir").map(PathBuf::from))
            .unwrap_or_else(|| "twin-data".into());
        let seconds = |key: &str, default: u64| -> anyhow::Result<Duration> {
            match s.get(key) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => v
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .with_context(|| format!("{key} must be a whole number of seconds, not {v:?}")),
            }
        };
        let rate = |key: &str, default: &str| -> anyhow::Result<Rate> {
            let text = s.get(key).unwrap_or_else(|| default.to_owned());
            text.parse::<Rate>().with_context(|| format!("{key} is not valid"))
        };
        Ok(Self {
            public_url,
            data_dir,
            database_url: overrides.database_url.clone().or_else(|| s.get("database_url")).map(Secret::new),
            redis_url: s.get("redis_url").map(Secret::new),
            node_id: s.get("node_id"),
            cluster: s.get("cluster"),
            cluster_lease: match s.get("cluster_lease_ms") {
                None => Duration::from_secs(3),
                Some(v) => match v.parse::<u64>() {
                    Ok(ms) if ms >= 400 => Duration::from_millis(ms),
                    _ => bail!("cluster_lease_ms must be a whole number of milliseconds, at least 400, not {v:?}"),
                },
            },
            qdrant_url: s.get("qdrant_url"),
            llm: ModelServer {
                base_url: s.get("llm_base_url"),
                model: s.get("llm_model"),
                api_key: s.get("llm_api_key").map(Secret::new),
            },
            embed: ModelServer {
                base_url: s.get("embed_base_url"),
                model: s.get("embed_model"),
                api_key: s.get("embed_api_key").map(Secret::new),
            },
            embed_model_path: s.get("embed_model_path").map(PathBuf::from),
            telegram_api_base: s.get("telegram_api_base").unwrap_or_else(|| "https://api.telegram.org".to_owned()),
            whatsapp_api_base: s
                .get("whatsapp_api_base")
                .unwrap_or_else(|| "https://graph.facebook.com/v21.0".to_owned()),
            whatsapp_verify_token: s.get("whatsapp_verify_token").map(Secret::new),
            jwt: JwtSettings {
                secret: s.get("jwt_secret").map(Secret::new),
                private_key: s.get("jwt_private_key").map(Secret::new),
                public_key: s.get("jwt_public_key"),
                issuer: s.get("jwt_issuer").unwrap_or_else(|| "twin".to_owned()),
                audience: s.get("jwt_audience").unwrap_or_else(|| "twin".to_owned()),
            },
            secret_key: s.get("secret_key").map(Secret::new),
            limits: LimitSettings {
                address: rate("rate_limit_address", "50/s burst 100")?,
                tenant: rate("rate_limit_tenant", "100/s burst 200")?,
                tickets: rate("rate_limit_tickets", "1/s burst 10")?,
                trusted_proxies: match s.get("trusted_proxies") {
                    None => Vec::new(),
                    Some(list) => list
                        .split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(|a| {
                            a.parse::<IpAddr>()
                                .with_context(|| format!("TWIN_TRUSTED_PROXIES: {a:?} is not an IP address"))
                        })
                        .collect::<anyhow::Result<_>>()?,
                },
            },
            log: s.get("log").unwrap_or_else(|| "info".to_owned()),
            idle_ttl: seconds("idle_ttl_secs", 300)?,
            live_buffer: twin_actors::LIVE_BUFFER,
            shutdown_grace: seconds("shutdown_grace_secs", 10)?,
            login_throttle_base: match s.get("login_throttle_base_ms") {
                None => Duration::from_secs(1),
                Some(v) => v.parse::<u64>().map(Duration::from_millis).with_context(|| {
                    format!("login_throttle_base_ms must be a whole number of milliseconds, not {v:?}")
                })?,
            },
            widget_ticket_ttl: Duration::from_secs(60),
            listen,
        })
    }

    /// The database URL in force: the configured one, or the SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("twin.db").display()),
        }
    }

    /// Settings that name parts this build does not have yet; `serve` warns about each.
    pub fn not_yet_supported(&self) -> Vec<&'static str> {
        let mut unused = Vec::new();
        if self.embed.base_url.is_some() && self.embed_model_path.is_some() {
            unused.push("TWIN_EMBED_MODEL_PATH (TWIN_EMBED_BASE_URL is set too, and the server is used)");
        }
        unused
    }
}

fn read_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    parse_file(&text).with_context(|| format!("{} is not valid", path.display()))
}

fn parse_file(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let table: toml::Table = toml::from_str(text)?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        if !KEYS.contains(&key.as_str()) {
            bail!("unknown key `{key}`; known keys: {}", KEYS.join(", "));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!("`{key}` must be a string or a number, not {}", other.type_str()),
        };
        values.insert(key, value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(flags: Overrides, file: &str, env: &[(&str, &str)]) -> Settings {
        let env: BTreeMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::from_sources(&flags, parse_file(file).unwrap(), Box::new(move |k| env.get(k).cloned())).unwrap()
    }

    #[test]
    fn flags_beat_environment_beats_file_beats_defaults() {
        let file = "listen = \"0.0.0.0:1\"\nlog = \"debug\"\njwt_audience = \"file\"";
        let env = [("TWIN_LISTEN", "0.0.0.0:2"), ("TWIN_JWT_AUDIENCE", "env")];
        let s = settings(Overrides { listen: Some("0.0.0.0:3".into()), ..Overrides::default() }, file, &env);
        assert_eq!(s.listen, "0.0.0.0:3");
        assert_eq!(s.jwt.audience, "env");
        assert_eq!(s.log, "debug");
        assert_eq!(s.jwt.issuer, "twin");
        assert_eq!(s.public_url, "http://0.0.0.0:3");
        let s = settings(Overrides::default(), file, &env);
        assert_eq!(s.listen, "0.0.0.0:2");
    }

    #[test]
    fn the_default_database_is_sqlite_in_the_data_dir() {
        let s = settings(Overrides { data_dir: Some("/tmp/x".into()), ..Overrides::default() }, "", &[]);
        assert_eq!(s.database_url(), "sqlite:///tmp/x/twin.db");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error_naming_it() {
        let error = parse_file("lissen = \"x\"").unwrap_err().to_string();
        assert!(error.contains("unknown key `lissen`"), "{error}");
    }

    #[test]
    fn secrets_never_print() {
        let s = settings(
            Overrides::default(),
            "",
            &[("TWIN_JWT_SECRET", "hunter2"), ("TWIN_DATABASE_URL", "postgres://u:pw@h/d")],
        );
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("pw@"), "{printed}");
    }

    #[test]
    fn the_ticket_budget_is_its_own_and_stricter() {
        let s = settings(Overrides::default(), "", &[]);
        assert_eq!(s.limits.tickets, "1/s burst 10".parse::<Rate>().unwrap());
        let s = settings(Overrides::default(), "rate_limit_tickets = \"5/min burst 2\"", &[]);
        assert_eq!(s.limits.tickets, "5/min burst 2".parse::<Rate>().unwrap());
        let env: BTreeMap<String, String> = [("TWIN_RATE_LIMIT_TICKETS".to_owned(), "lots".to_owned())].into();
        let error =
            Settings::from_sources(&Overrides::default(), BTreeMap::new(), Box::new(move |k| env.get(k).cloned()))
                .unwrap_err();
        assert!(format!("{error:#}").contains("rate_limit_tickets"), "{error:#}");
    }

    #[test]
    fn the_login_throttle_base_is_milliseconds_and_defaults_to_a_second() {
        assert_eq!(settings(Overrides::default(), "", &[]).login_throttle_base, Duration::from_secs(1));
        let s = settings(Overrides::default(), "", &[("TWIN_LOGIN_THROTTLE_BASE_MS", "250")]);
        assert_eq!(s.login_throttle_base, Duration::from_millis(250));
        let env: BTreeMap<String, String> = [("TWIN_LOGIN_THROTTLE_BASE_MS".to_owned(), "soon".to_owned())].into();
        let error =
            Settings::from_sources(&Overrides::default(), BTreeMap::new(), Box::new(move |k| env.get(k).cloned()))
                .unwrap_err();
        assert!(format!("{error:#}").contains("login_throttle_base_ms"), "{error:#}");
    }
}
