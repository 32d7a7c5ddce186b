//! The `twin` command line (CONTRACT.md): one subcommand per verb, each with `--help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use twin_engine::ports::{CreatorStore, ProgramSource, PutOutcome};
use twin_engine::{Slug, UserId};

use crate::auth::{Role, TokenKeys};
use crate::bundle::{self, Bundle};
use crate::settings::{Overrides, Settings};
use crate::startup::{self, Application, ServeOptions};

#[derive(Debug, Parser)]
#[command(name = "twin", version, about = "Realtime conversation engine for creator digital twins")]
pub struct Cli {
    /// Log filter (overrides TWIN_LOG), e.g. `debug` or `twin_actors=debug,info`.
    #[arg(long, global = true)]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    pub fn log_filter(&self) -> Option<String> {
        self.log.clone()
    }
}

/// Where the server's state lives; the same flags on every command that touches it.
#[derive(Debug, Clone, Args)]
struct StateArgs {
    /// Data dir for the embedded defaults (TWIN_DATA_DIR; default ./twin-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL (TWIN_DATABASE_URL; default SQLite in the data dir).
    #[arg(long)]
    database_url: Option<String>,
}

impl StateArgs {
    fn settings(&self, listen: Option<String>) -> anyhow::Result<Settings> {
        Settings::load(&Overrides { listen, data_dir: self.data_dir.clone(), database_url: self.database_url.clone() })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the engine (embedded defaults when nothing is configured).
    Serve {
        /// Load the built-in demo creator if the store has none.
        #[arg(long)]
        demo: bool,
        /// Import every creator bundle in DIR at start (idempotent).
        #[arg(long, value_name = "DIR")]
        creators: Option<PathBuf>,
        /// HTTP and WebSocket address (TWIN_LISTEN; default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Print the OpenAPI document of the REST API (what `GET /v1/openapi.json` serves), for client
    /// generators and validators.
    Openapi,
    /// Apply the database migrations and exit.
    Migrate {
        #[command(flatten)]
        state: StateArgs,
    },
    /// Print a signed token for an identity, with the same keys as `serve`.
    Token {
        /// The creator (tenant) the token is for.
        #[arg(long, value_name = "SLUG")]
        creator: String,
        /// The subject: an end user's id (default: `guest`), or the account for other roles.
        #[arg(long, value_name = "ID")]
        user: Option<String>,
        #[arg(long, value_enum, default_value = "user")]
        role: Role,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        #[command(flatten)]
        state: StateArgs,
    },
    /// The server's token signing keys (the development key ring in the data dir).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Creator bundles in and out.
    Creator {
        #[command(subcommand)]
        command: CreatorCommand,
    },
    /// The creator's persona.
    Persona {
        #[command(subcommand)]
        command: PersonaCommand,
    },
    /// Coaching program files.
    Program {
        #[command(subcommand)]
        command: ProgramCommand,
    },
    /// The condition language of programs.
    Condition {
        #[command(subcommand)]
        command: ConditionCommand,
    },
    /// Telegram and WhatsApp channels of creators.
    Channels {
        #[command(subcommand)]
        command: ChannelsCommand,
    },
    /// Creator, agent and admin accounts (password login).
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Chat with a twin in the terminal, over the WebSocket API of a running server.
    Chat {
        #[arg(long, value_name = "SLUG")]
        creator: String,
        /// Your user id (default: `guest`); the same id continues the same conversation.
        #[arg(long, value_name = "ID")]
        user: Option<String>,
        /// Server address (default: TWIN_PUBLIC_URL, else http://TWIN_LISTEN).
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print the key ids that verify tokens, the signing one first, and the key source.
    List {
        #[command(flatten)]
        state: StateArgs,
    },
    /// Generate a new Ed25519 signing key in DATA_DIR/jwt-keys/ and print its kid. The previous
    /// public keys keep verifying tokens (delete their `<kid>.pub.pem` once those have expired).
    /// Running servers pick the new key up when restarted. Not for configured keys: with
    /// TWIN_JWT_PRIVATE_KEY, rotate by setting the new key and moving the old public key into
    /// TWIN_JWT_PUBLIC_KEY.
    Rotate {
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Create an account in the configured store: the first admin, a creator's own account, or an
    /// agent. The password is read from stdin with --password-stdin (up to the first line break);
    /// without it a random password is generated and printed once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_enum)]
        role: AccountRoleArg,
        /// The creator (tenant) of a creator or agent account; admins have none.
        #[arg(long, value_name = "SLUG")]
        creator: Option<String>,
        /// Read the password from stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AccountRoleArg {
    Admin,
    Creator,
    Agent,
}

#[derive(Debug, Subcommand)]
enum PersonaCommand {
    /// Derive a draft persona from a bundle's knowledge (offline stylometry) and print what it would
    /// fill in: only settings the creator left unset are proposed; their own are shown as kept.
    /// Nothing is written unless --out names a file for the draft.
    Analyze {
        /// A creator bundle folder.
        dir: PathBuf,
        /// Write the whole draft (measurements included) to this file as TOML, for review.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ProgramCommand {
    /// Exit 0 when the program file is valid; otherwise exit 1 and one line per problem, each
    /// naming its step. The file name (without extension) is the program's id.
    Validate { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum ConditionCommand {
    /// Print the value of a condition expression as JSON; exit 2 with the position on a syntax
    /// error, 1 with a message on any other error.
    Eval {
        expr: String,
        /// Variables as a JSON object; nested objects give dotted names (`{"user":{"name":"Ana"}}`
        /// is `user.name`); `{"duration_ms": n}` and `{"time_ms": n}` are durations and times.
        #[arg(long, value_name = "JSON")]
        vars: Option<String>,
        /// Answers by step id, for `answer("step")`, as a JSON object.
        #[arg(long, value_name = "JSON")]
        answers: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum CreatorCommand {
    /// Import (create or update) the creator bundle in DIR; an unchanged bundle changes nothing.
    /// Then embeds its knowledge with the configured embedder, showing progress per document
    /// (unchanged documents are skipped); a running server would also do this in the background.
    Import {
        dir: PathBuf,
        /// Store the bundle only; the server embeds the knowledge when the twin loads.
        #[arg(long)]
        no_embed: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Write the creator SLUG as a bundle into DIR (which must be empty or missing).
    Export {
        slug: String,
        dir: PathBuf,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ChannelsCommand {
    /// Point the creator's Telegram bot at this server (`setWebhook` with the configured secret), at
    /// TWIN_PUBLIC_URL/v1/channels/telegram/SLUG/webhook. The creator must be imported.
    TelegramRegister {
        #[arg(long, value_name = "SLUG")]
        creator: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Print a fresh random webhook secret, to put in the variable `channels.toml` names for
    /// `webhook_secret` before `telegram-register`.
    TelegramSecret,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { demo, creators, listen, state } => {
            let settings = state.settings(listen)?;
            let app = Application::build(settings, ServeOptions { demo, creators }).await?;
            app.run_until_stopped().await?;
        }
        Command::Openapi => {
            println!("{}", crate::routes::openapi::spec().to_pretty_json().context("cannot write the document")?);
        }
        Command::Migrate { state } => {
            let settings = state.settings(None)?;
            let store = startup::open_store(&settings).await?;
            store.close().await;
            println!("migrations applied ({})", store.backend());
        }
        Command::Token { creator, user, role, ttl, state } => {
            let settings = state.settings(None)?;
            let slug = Slug::parse(&creator).with_context(|| format!("{creator:?} is not a valid creator slug"))?;
            let subject = subject(user, role, &slug)?;
            let keys = TokenKeys::from_settings(&settings)?;
            println!("{}", keys.mint(slug.creator_id(), &subject, role, ttl)?);
        }
        Command::Keys { command: KeysCommand::List { state } } => {
            let settings = state.settings(None)?;
            let keys = TokenKeys::from_settings(&settings)?;
            println!("source: {}", key_source(&settings));
            for kid in keys.kids() {
                let signing = if kid == keys.signing_kid() { " (signing)" } else { "" };
                println!("{kid}{signing}");
            }
        }
        Command::Keys { command: KeysCommand::Rotate { state } } => {
            let settings = state.settings(None)?;
            if settings.jwt.secret.is_some() || settings.jwt.private_key.is_some() {
                anyhow::bail!(
                    "the token keys come from {}; rotate them there (the development key ring is used only when \
                     neither TWIN_JWT_SECRET nor TWIN_JWT_PRIVATE_KEY is set)",
                    key_source(&settings)
                );
            }
            let next = crate::auth::keyfiles::rotate_dev_ring(&settings.data_dir, |public| {
                crate::auth::tokens::ed25519_kid(public).unwrap_or_default()
            })?;
            println!("{}", crate::auth::tokens::ed25519_kid(&next.public)?);
        }
        Command::Creator { command: CreatorCommand::Import { dir, no_embed, state } } => {
            let settings = state.settings(None)?;
            let bundle = bundle::load_dir(&dir)?;
            let store = startup::open_store(&settings).await?;
            crate::auth::issuers::check_import(&store, &bundle.profile, &settings.jwt.issuer).await?;
            let outcome = startup::import(&store, &bundle).await?;
            let embedded =
                if no_embed { Ok(None) } else { embed_knowledge(&settings, &store, &bundle).await.map(Some) };
            store.close().await;
            match outcome {
                PutOutcome::Created => {
                    println!("created {} ({} documents)", bundle.profile.slug, bundle.documents.len())
                }
                PutOutcome::Updated { version } => println!("updated {} to version {version}", bundle.profile.slug),
                PutOutcome::Unchanged => println!("{} is unchanged", bundle.profile.slug),
            }
            if let Some(report) = embedded? {
                println!(
                    "knowledge: {} documents embedded ({} chunks), {} unchanged, {} failed",
                    report.embedded, report.chunks, report.unchanged, report.failed
                );
                if report.failed > 0 {
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Command::Creator { command: CreatorCommand::Export { slug, dir, state } } => {
            let settings = state.settings(None)?;
            let slug = Slug::parse(&slug).with_context(|| format!("{slug:?} is not a valid creator slug"))?;
            let store = startup::open_store(&settings).await?;
            let stored = store.creator(slug.creator_id()).await?;
            store.close().await;
            let stored = stored.with_context(|| format!("there is no creator {slug}"))?;
            // The latest version of each program; older versions live on in the store for the
            // enrolments pinned to them.
            let mut programs: Vec<ProgramSource> = Vec::new();
            for program in stored.programs {
                match programs.last_mut() {
                    Some(last) if last.id == program.id => last.source = program.source,
                    _ => programs.push(ProgramSource { id: program.id, source: program.source }),
                }
            }
            let bundle = Bundle { profile: stored.profile, documents: stored.documents, programs };
            bundle::write_dir(&bundle, &dir)?;
            println!("exported {slug} to {}", dir.display());
        }
        Command::Persona { command: PersonaCommand::Analyze { dir, out } } => {
            let bundle = bundle::load_dir(&dir)?;
            let draft = twin_engine::persona::analyze(&bundle.documents);
            let changes = twin_engine::persona::draft_changes(&bundle.profile.persona, &draft);
            println!(
                "persona draft for {} from {} knowledge documents ({} words measured)",
                bundle.profile.slug,
                bundle.documents.len(),
                draft.style.words
            );
            if changes.is_empty() {
                println!("nothing to propose");
            }
            for change in &changes {
                println!("{change}");
            }
            if let Some(out) = out {
                let text = toml::to_string_pretty(&draft).context("cannot write the draft as TOML")?;
                std::fs::write(&out, text).with_context(|| format!("cannot write {}", out.display()))?;
                println!("draft written to {}", out.display());
            }
        }
        Command::Program { command: ProgramCommand::Validate { file } } => {
            return crate::tools::validate_program(&file);
        }
        Command::Condition { command: ConditionCommand::Eval { expr, vars, answers } } => {
            return crate::tools::eval_condition(&expr, vars.as_deref(), answers.as_deref());
        }
        Command::Channels { command: ChannelsCommand::TelegramSecret } => {
            println!("{}", twin_channels::telegram::config::generate_webhook_secret());
        }
        Command::Channels { command: ChannelsCommand::TelegramRegister { creator, state } } => {
            let settings = state.settings(None)?;
            let slug = Slug::parse(&creator).map_err(|e| anyhow::anyhow!("--creator {creator:?}: {e}"))?;
            let store = startup::open_store(&settings).await?;
            let stored = store
                .creator(slug.creator_id())
                .await?
                .with_context(|| format!("no creator {slug} in the store; import its bundle first"))?;
            let telegram = stored
                .profile
                .channels
                .telegram
                .with_context(|| format!("{slug} has no [telegram] section in its channels.toml"))?;
            let secrets = crate::secrets::SecretBox::from_settings(&settings)?;
            let config =
                twin_channels::telegram::TelegramConfig::resolve(&telegram, &settings.telegram_api_base, &secrets)
                    .with_context(|| format!("the [telegram] settings of {slug} do not resolve"))?;
            let url = format!("{}/v1/channels/telegram/{slug}/webhook", settings.public_url.trim_end_matches('/'));
            let client = twin_channels::telegram::TelegramClient::new(reqwest::Client::new(), Arc::new(config));
            client.set_webhook(&url, &client.config().webhook_secret).await.context("setWebhook failed")?;
            println!("the bot of {slug} now delivers to {url}");
            store.close().await;
        }
        Command::Account { command: AccountCommand::Create { email, role, creator, password_stdin, state } } => {
            create_account(email, role, creator, password_stdin, &state).await?;
        }
        Command::Chat { creator, user, url, state } => {
            let settings = state.settings(None)?;
            let slug = Slug::parse(&creator).with_context(|| format!("{creator:?} is not a valid creator slug"))?;
            let subject = subject(user, Role::User, &slug)?;
            let keys = TokenKeys::from_settings(&settings)?;
            let token = keys.mint(slug.creator_id(), &subject, Role::User, Duration::from_secs(24 * 3600))?;
            let base = url.unwrap_or_else(|| settings.public_url.clone());
            crate::chat_client::run(&base, &token).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Embeds the bundle's knowledge with the configured embedder and index, drawing a progress bar
/// on stderr (chunks embedded of all chunks to embed).
async fn embed_knowledge(
    settings: &crate::settings::Settings,
    store: &twin_store::Store,
    bundle: &Bundle,
) -> anyhow::Result<twin_actors::IngestReport> {
    let ports = crate::models::knowledge_ports(settings, store).await?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{msg:30!} [{bar:30}] {pos}/{len} chunks")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut seen = std::collections::HashMap::new();
    let report = twin_actors::ingest(&ports, bundle.profile.slug.creator_id(), &bundle.documents, |status| {
        let (done, total) = seen.entry(status.document.clone()).or_insert((0, 0));
        if *total == 0 && status.state == twin_engine::ports::IngestState::Embedding {
            *total = status.chunks_total;
            bar.inc_length(u64::from(status.chunks_total));
        }
        if *total > 0 {
            bar.inc(u64::from(status.chunks_done.saturating_sub(*done)));
            *done = status.chunks_done;
            bar.set_message(status.document.clone());
        }
        if status.state == twin_engine::ports::IngestState::Failed {
            bar.println(format!("{}: failed: {}", status.document, status.error.as_deref().unwrap_or("unknown error")));
        }
    })
    .await
    .context("cannot record the ingestion")?;
    bar.finish_and_clear();
    Ok(report)
}

/// Where the token keys come from, for `twin keys`.
fn key_source(settings: &Settings) -> String {
    if settings.jwt.secret.is_some() {
        "TWIN_JWT_SECRET (HS256)".to_owned()
    } else if settings.jwt.private_key.is_some() {
        "TWIN_JWT_PRIVATE_KEY (Ed25519)".to_owned()
    } else {
        format!("{} (Ed25519)", settings.data_dir.join(crate::auth::keyfiles::KEYS_DIR).display())
    }
}

/// `twin account create`: one clear sentence on any refusal.
async fn create_account(
    email: String,
    role: AccountRoleArg,
    creator: Option<String>,
    password_stdin: bool,
    state: &StateArgs,
) -> anyhow::Result<()> {
    use crate::accounts::{AccountRequest, Actor, CreateError};
    use twin_store::AccountRole;

    let role = match role {
        AccountRoleArg::Admin => AccountRole::Admin,
        AccountRoleArg::Creator => AccountRole::Creator,
        AccountRoleArg::Agent => AccountRole::Agent,
    };
    let creator = match (role, creator) {
        (AccountRole::Admin, None) => None,
        (AccountRole::Admin, Some(_)) => anyhow::bail!("an admin account belongs to no creator; leave out --creator"),
        (_, None) => anyhow::bail!("a {} account needs --creator SLUG", role.as_str()),
        (_, Some(slug)) => {
            Some(Slug::parse(&slug).map_err(|_| anyhow::anyhow!("{slug:?} is not a valid creator slug"))?)
        }
    };
    let (password, generated) = if password_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("cannot read the password from stdin")?;
        (line.trim_end_matches(['\n', '\r']).to_owned(), false)
    } else {
        (generate_password(), true)
    };
    let settings = state.settings(None)?;
    let store = startup::open_store(&settings).await?;
    let request = AccountRequest { email, password: password.clone(), role, creator };
    let actor = Actor { name: "cli".to_owned(), client_address: None };
    let created = crate::accounts::create(
        &store,
        request,
        &actor,
        twin_engine::ports::Clock::now(&twin_engine::ports::SystemClock),
    )
    .await;
    store.close().await;
    let account = match created {
        Ok(account) => account,
        Err(CreateError::Failed(cause)) => return Err(cause.context("cannot create the account")),
        Err(refused) => anyhow::bail!("{refused}"),
    };
    println!("created {} account {} (id {})", account.role.as_str(), account.email, account.id);
    if generated {
        println!("password (shown once): {password}");
    }
    Ok(())
}

/// 24 random letters and digits (about 140 bits).
fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..24).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}

fn subject(user: Option<String>, role: Role, slug: &Slug) -> anyhow::Result<UserId> {
    let raw = user.unwrap_or_else(|| match role {
        Role::User => "guest".to_owned(),
        _ => slug.to_string(),
    });
    UserId::parse(&raw).with_context(|| format!("{raw:?} is not a valid user id"))
}
