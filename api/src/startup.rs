//! `Application`: builds the whole server from `Settings` (store, adapters, actor tree, routes) and
//! runs it until a shutdown signal, then shuts down in order: stop accepting, close sockets, let
//! conversations finish their mailboxes, flush the writer, close the store.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use twin_actors::{EngineConfig, EngineHandle, LiveHub, Ports, SchedulerConfig};
use twin_channels::outbox::{OutboxConfig, OutboxHandle};
use twin_channels::websocket::SessionHub;
use twin_cluster::{LiveConfig, RedisLive};
use twin_engine::CreatorId;
use twin_engine::channel::OutboxEntry;
use twin_engine::ports::{ChannelStore, Clock, CreatorStore, LivePublisher, Outbox, PutOutcome, SystemClock};
use twin_store::Store;

use crate::auth::issuers::CreatorIssuers;
use crate::auth::{Authenticator, TokenKeys};
use crate::bundle::{self, Bundle};
use crate::channels::{ChannelRegistry, Inbox, OutboxFeedback};
use crate::routes::{self, AppState};
use crate::settings::Settings;

/// What `twin serve` loads at start besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Import the built-in demo creator if the store has none by that slug.
    pub demo: bool,
    /// Import every creator bundle in this folder (idempotent).
    pub creators: Option<PathBuf>,
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown: watch::Sender<bool>,
    grace: Duration,
    /// The idle sweep, the outbox worker and the inbox sweep; stopped after the HTTP server.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// Set in cluster mode (`TWIN_REDIS_URL`): left, with every conversation handed over, before
    /// the engine shuts down.
    cluster: Option<Arc<twin_cluster::RedisCluster>>,
}

impl Application {
    pub async fn build(settings: Settings, options: ServeOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create the data dir {}", settings.data_dir.display()))?;
        for unused in settings.not_yet_supported() {
            tracing::warn!("set but not used by this build: {unused}");
        }
        let store = open_store(&settings).await?;
        let mut imported = Vec::new();
        if options.demo {
            imported.extend(import_demo_if_missing(&store).await?);
        }
        if let Some(dir) = &options.creators {
            imported.extend(import_all_checked(&store, dir, &settings.jwt.issuer).await?);
        }
        let keys = TokenKeys::from_settings(&settings)?;
        let secrets = Arc::new(crate::secrets::SecretBox::from_settings(&settings)?);
        let issuers =
            CreatorIssuers::new(store.clone(), settings.jwt.audience.clone(), secrets.clone(), reqwest::Client::new());
        let auth = Arc::new(Authenticator::new(keys.clone(), issuers));
        let hub = Arc::new(SessionHub::new());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let live: Arc<LiveHub> = Arc::new(LiveHub::with_buffer(settings.live_buffer));
        // What the engine, the inbox and the outbox publish to; watchers subscribe to `live`.
        let cluster = crate::cluster::join(&settings, settings.public_url.clone()).await?;
        let publish_live = live_publisher(&settings, live.clone(), cluster.as_ref()).await?;
        // The outbox is wired in two steps: conversations need its port before the engine starts,
        // and it needs the engine (to load creators' channels) once it runs.
        let outbox_port = Arc::new(LateOutbox::default());
        let ports = Ports {
            conversations: Arc::new(store.clone()),
            creators: Arc::new(store.clone()),
            nudges: Arc::new(store.clone()),
            llm: crate::models::chat_model(&settings)?,
            knowledge: crate::models::knowledge_ports(&settings, &store).await?,
            delivery: hub.clone(),
            outbox: outbox_port.clone(),
            live: publish_live.clone(),
            clock: clock.clone(),
            cluster: cluster.clone().map(|c| c as Arc<dyn twin_engine::ports::Cluster>),
        };
        let scheduler = SchedulerConfig {
            // Crash drill hook (api/tests/programs.rs): claim due nudges and never deliver them.
            // Never set in production; the server logs a warning each time it holds a nudge.
            hold_after_claim: std::env::var_os("TWIN_FAULT_HOLD_AFTER_NUDGE_CLAIM").is_some(),
            // Other nodes' claims are live: only a lone node may drop every claim at start.
            release_claims_at_start: cluster.is_none(),
            ..SchedulerConfig::default()
        };
        let config = EngineConfig {
            idle_ttl: settings.idle_ttl,
            scheduler: Some(scheduler),
            handover_wait: settings.cluster_lease * 2,
            ..EngineConfig::default()
        };
        let engine = EngineHandle::start(ports, config).await.context("cannot start the actor tree")?;
        // Load the twins imported at start, so their knowledge is embedded now rather than on the
        // first conversation (loading a twin starts its ingestion in the background).
        let warming = engine.clone();
        tokio::spawn(async move {
            for creator in imported {
                if let Err(error) = warming.twin(creator).await {
                    tracing::warn!(%creator, %error, "could not load an imported twin");
                }
            }
        });
        let channel_store: Arc<dyn ChannelStore> = Arc::new(store.clone());
        let registry = Arc::new(ChannelRegistry::new(
            engine.clone(),
            settings.telegram_api_base.clone(),
            settings.whatsapp_api_base.clone(),
            secrets.clone(),
        ));
        let feedback = OutboxFeedback { store: channel_store.clone(), engine: engine.clone() };
        let outbox_config = OutboxConfig {
            // Crash drill hook (api/tests/channels.rs): never send. Never set in production.
            hold_before_send: std::env::var_os("TWIN_FAULT_OUTBOX_HOLD_BEFORE_SEND").is_some(),
            // Other nodes' claims are live: only a lone node may drop every claim at start.
            release_claims_at_start: cluster.is_none(),
            ..OutboxConfig::default()
        };
        let (outbox, outbox_task) = twin_channels::outbox::start(
            channel_store.clone(),
            registry.clone(),
            Arc::new(feedback),
            publish_live.clone(),
            clock.clone(),
            outbox_config,
        );
        outbox_port.set(outbox);
        // Crash drill hook (api/tests/channels_crash.rs). Never set in production.
        let hold_inbox = std::env::var_os("TWIN_FAULT_INBOX_HOLD_AFTER_STORE").is_some();
        let inbox = Inbox::new(
            channel_store.clone(),
            engine.clone(),
            registry.clone(),
            publish_live,
            clock.clone(),
            hold_inbox,
        );
        if cluster.is_none() {
            // A lone node: what a crashed run had claimed is fed again now, not after its lease.
            match channel_store.inbox_release_claims().await {
                Ok(released) if released > 0 => tracing::info!(released, "released inbox claims of an earlier run"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not release inbox claims; they expire with their lease"),
            }
        }
        // Deliveries a crash left between their 200 and their turn are fed first, then swept.
        let inbox_task = tokio::spawn(inbox.clone().replay_forever());
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let (shutdown, _) = watch::channel(false);
        let sweeper = tokio::spawn(sweep_idle(engine.clone(), settings.idle_ttl));
        let limits =
            crate::limits::Limits::connect(&settings.limits, settings.redis_url.as_ref().map(|u| u.expose())).await?;
        let widget = Arc::new(crate::widget::Widget::from_settings(&settings, &secrets).await?);
        let audit = Arc::new(crate::gdpr::StoreAudit { store: store.clone(), clock: clock.clone() });
        let state = AppState {
            engine,
            hub,
            live,
            keys,
            limits,
            secrets,
            auth,
            store,
            metrics: crate::telemetry::metrics(),
            channels: registry,
            inbox,
            clock,
            whatsapp_verify_token: settings
                .whatsapp_verify_token
                .as_ref()
                .map(|token| twin_channels::Secret::new(token.expose())),
            throttle: crate::accounts::ThrottlePolicy { base: settings.login_throttle_base },
            audit,
            widget,
            shutdown: shutdown.subscribe(),
            cluster: cluster.clone(),
        };
        let mut background = vec![sweeper, outbox_task, inbox_task];
        if let Some(cluster) = &cluster {
            background.extend(crate::cluster::start(cluster, &state.engine));
        }
        Ok(Self { listener, state, shutdown, grace: settings.shutdown_grace, background, cluster })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address.
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The token keys this server verifies with (tests mint tokens with them).
    pub fn keys(&self) -> TokenKeys {
        self.state.keys.clone()
    }

    pub fn engine(&self) -> EngineHandle {
        self.state.engine.clone()
    }

    /// Runs until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    pub async fn run_until(self, signal: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { listener, state, shutdown, grace, background, cluster } = self;
        tracing::info!(address = %listener.local_addr()?, store = state.store.backend(), "twin is listening");
        let engine = state.engine.clone();
        let store = state.store.clone();
        let app = routes::router(state);
        // Frames are small and often back to back (an ack, then deltas): without TCP_NODELAY,
        // Nagle's algorithm holds each second frame for the client's delayed ACK (~40 ms).
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        let watched = engine.clone();
        let (failure_tx, failure_rx) = tokio::sync::oneshot::channel::<String>();
        let stop = async move {
            tokio::select! {
                () = signal => {}
                reason = watched.failed() => {
                    let _ = failure_tx.send(reason);
                }
            }
            tracing::info!("shutting down: closing sockets, finishing conversations, flushing writes");
            // Sockets are long-lived; tell each session to close so the server can drain.
            let _ = shutdown.send(true);
        };
        // Each request knows its client address (the login throttle counts failures per address).
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).with_graceful_shutdown(stop).await.context("the HTTP server failed")?;
        if let Some(cluster) = &cluster {
            crate::cluster::leave(cluster, &engine, grace).await;
        }
        for task in background {
            task.abort();
        }
        engine.shutdown(grace).await;
        store.close().await;
        if let Ok(reason) = failure_rx.await {
            anyhow::bail!("the engine failed and stopped ({reason}); restart it");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database_url()).await.context("cannot open the store")?;
    store.migrate().await.context("cannot apply the database migrations")?;
    Ok(store)
}

/// The demo creator, imported when the store has none by its slug; its id either way.
async fn import_demo_if_missing(store: &Store) -> anyhow::Result<Option<CreatorId>> {
    let demo = bundle::demo();
    let id = demo.profile.slug.creator_id();
    if store.creator(id).await?.is_none() {
        import(store, &demo).await?;
    }
    Ok(Some(id))
}

/// Imports every bundle folder in `dir`; the ids of the creators imported.
pub async fn import_all(store: &Store, dir: &Path) -> anyhow::Result<Vec<CreatorId>> {
    import_all_checked(store, dir, "").await
}

/// [`import_all`], each bundle's `[user_tokens]` checked against the server's token issuer first
/// ([`crate::auth::issuers::check_import`]).
pub async fn import_all_checked(store: &Store, dir: &Path, platform_issuer: &str) -> anyhow::Result<Vec<CreatorId>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read the creators folder {}", dir.display()))?;
    let mut folders: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    folders.sort();
    let mut ids = Vec::new();
    for folder in folders {
        let bundle = bundle::load_dir(&folder)?;
        crate::auth::issuers::check_import(store, &bundle.profile, platform_issuer).await?;
        import(store, &bundle).await?;
        ids.push(bundle.profile.slug.creator_id());
    }
    Ok(ids)
}

pub async fn import(store: &Store, bundle: &Bundle) -> anyhow::Result<PutOutcome> {
    let outcome = store
        .put_creator(&bundle.profile, &bundle.documents, &bundle.programs)
        .await
        .with_context(|| format!("cannot store creator {}", bundle.profile.slug))?;
    tracing::info!(creator = %bundle.profile.slug, ?outcome, documents = bundle.documents.len(), "creator imported");
    Ok(outcome)
}

/// Asks idle conversations to passivate, a few times per TTL.
/// The live port: this node's LiveHub alone, or, in a cluster, the fan-out that also sends every
/// event to the other nodes and feeds theirs into the hub (twin_cluster::live).
async fn live_publisher(
    settings: &Settings,
    hub: Arc<LiveHub>,
    cluster: Option<&Arc<twin_cluster::RedisCluster>>,
) -> anyhow::Result<Arc<dyn LivePublisher>> {
    let (Some(url), Some(cluster)) = (&settings.redis_url, cluster) else { return Ok(hub) };
    let membership = cluster.membership();
    let config = LiveConfig { prefix: membership.prefix().to_owned(), ..LiveConfig::default() };
    let fanout = RedisLive::connect(url.expose(), membership.node(), hub, config)
        .await
        .context("cannot reach Redis (TWIN_REDIS_URL) for the live fan-out")?;
    Ok(Arc::new(fanout))
}

async fn sweep_idle(engine: EngineHandle, ttl: Duration) {
    let period = (ttl / 4).max(Duration::from_secs(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        engine.sweep_idle();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// The outbox port handed to the engine before the outbox worker exists; entries dispatched before
/// it is set are found by the worker's first scan.
#[derive(Default)]
struct LateOutbox(std::sync::OnceLock<OutboxHandle>);

impl LateOutbox {
    fn set(&self, outbox: OutboxHandle) {
        let _ = self.0.set(outbox);
    }
}

impl Outbox for LateOutbox {
    fn dispatch(&self, entries: Vec<OutboxEntry>) {
        if let Some(outbox) = self.0.get() {
            outbox.dispatch(entries);
        }
    }
}
