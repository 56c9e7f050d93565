//! `tern`: the Tern client command line. Thin: parses arguments and calls
//! [`tern::cli`] (send, recv, pull; convs, history, read). Benchmarks are
//! `tern-bench`, in the lab.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tern::cli;
use tern::client::ServerTrust;

#[derive(Parser)]
#[command(
    name = "tern",
    version,
    about = "Tern client: send and receive messages, inspect the backlog"
)]
struct Cli {
    #[command(flatten)]
    log: cli::Verbosity,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Conn {
    /// Server: udp://HOST:PORT or HOST:PORT (raw UDP, port 7400 if
    /// omitted), or quic://HOST:PORT (QUIC, port 7401 if omitted; needs
    /// --quic-fingerprint or --quic-ca).
    #[arg(long, env = "TERN_SERVER")]
    server: String,
    /// Login token, hex, as printed by `ternd token`.
    #[arg(long, env = "TERN_TOKEN", hide_env_values = true)]
    token: String,
    /// Folder for durable client state (checkpoint, unsent messages).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The server's seal key (`tern-x25519:…`, printed by `ternd seal-key`
    /// and at `ternd serve` start): the session is encrypted and the server
    /// authenticated. Servers require it unless `[seal] policy` says otherwise.
    #[arg(long, env = "TERN_SEAL_KEY")]
    seal_key: Option<String>,
    /// QUIC: the SHA-256 fingerprint of the server's certificate, as `ternd
    /// serve` prints it (`quic certificate sha256 HEX`); only that
    /// certificate is accepted.
    #[arg(long, env = "TERN_QUIC_FINGERPRINT", value_name = "HEX")]
    quic_fingerprint: Option<String>,
    /// QUIC: a PEM file of trusted certificates (a CA, or the server's own
    /// certificate); the chain and the server name are verified.
    #[arg(
        long,
        env = "TERN_QUIC_CA",
        value_name = "FILE",
        conflicts_with = "quic_fingerprint"
    )]
    quic_ca: Option<PathBuf>,
}

impl Conn {
    fn connection(self) -> anyhow::Result<cli::Connection> {
        let quic_trust = match (self.quic_fingerprint, self.quic_ca) {
            (Some(fp), _) => Some(ServerTrust::fingerprint(&fp).context("--quic-fingerprint")?),
            (None, Some(ca)) => Some(ServerTrust::CaFile(ca)),
            (None, None) => None,
        };
        Ok(cli::Connection {
            server: cli::parse_server_addr(&self.server)?,
            quic_trust,
            token: cli::parse_token(&self.token)?,
            seal_key: self
                .seal_key
                .as_deref()
                .map(str::parse)
                .transpose()
                .context("--seal-key")?,
            state_dir: self.state_dir,
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Send a message; exits 0 once the server has stored it, printing
    /// `stored seq=N`, or `delivered seq=N` when the receiver was online and
    /// acknowledged it within --wait-delivered.
    Send {
        #[command(flatten)]
        conn: Conn,
        /// Receiving user id.
        #[arg(long)]
        to: u64,
        /// Conversation id.
        #[arg(long, default_value_t = 1)]
        conv: u64,
        /// Application message type (0 = UTF-8 text by convention).
        #[arg(long = "type", default_value_t = 0)]
        msg_type: u64,
        /// The message is hex-encoded bytes rather than text.
        #[arg(long)]
        hex: bool,
        /// Limit for connecting and getting the server's ACK.
        #[arg(long, default_value = "10s")]
        timeout: humantime::Duration,
        /// How long to wait for the receiver's DELIVERED receipt when it is
        /// online (0s: do not wait).
        #[arg(long, default_value = "2s")]
        wait_delivered: humantime::Duration,
        /// The message.
        text: String,
    },
    /// Print messages as they arrive (one JSON object per line with
    /// --json); each is released after it is printed.
    Recv {
        #[command(flatten)]
        conn: Conn,
        /// Exit 0 after this many messages from other users (receipts and recalls count only with --all; this user's own copies never count).
        #[arg(long)]
        count: Option<u64>,
        /// Count receipts and recalls toward --count too.
        #[arg(long)]
        all: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Give up after this long (0s: never). With --count, running out
        /// of time is an error.
        #[arg(long, default_value = "30s")]
        timeout: humantime::Duration,
        /// Limit for the first login.
        #[arg(long, default_value = "10s")]
        connect_timeout: humantime::Duration,
    },
    /// Run a local client with an HTTP API (Unix socket or loopback TCP)
    /// for apps in any language: durable outbox with idempotency keys,
    /// events as SSE or WebSocket released on acknowledgement
    /// (docs/sidecar.md).
    Sidecar(tern::sidecar::SidecarArgs),
    /// Print the conversation summary (counters first); with --all, then
    /// pull and consume the whole backlog page by page.
    Pull {
        #[command(flatten)]
        conn: Conn,
        /// Pull everything after the summary (releases it for this device).
        #[arg(long)]
        all: bool,
        /// Print the pulled entries (with --all).
        #[arg(long)]
        print: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Limit for each step.
        #[arg(long, default_value = "10s")]
        timeout: humantime::Duration,
    },
    /// The conversation list: unread count, read position, newest message
    /// and hidden flag of each conversation, newest change first.
    Convs {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        args: cli::ConvsArgs,
    },
    /// A page of a conversation's history, oldest first; with --state-dir
    /// served from the local history when it holds the page. The span,
    /// where it came from and what is held go to stderr.
    History {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        args: cli::HistoryArgs,
    },
    /// Mark a conversation read up to a record, on every device of this
    /// user (with a READ receipt to the other user of a direct one).
    Read {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        args: cli::ReadArgs,
    },
    /// Groups: create, add, remove, leave, members, send.
    Group {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        args: cli::GroupArgs,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn d(h: humantime::Duration) -> Duration {
    h.into()
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Sidecar(args) => Ok(tern::sidecar::main(args)?),
        Command::Send {
            conn,
            to,
            conv,
            msg_type,
            hex,
            timeout,
            wait_delivered,
            text,
        } => {
            let payload = if hex {
                ::hex::decode(text.trim())
                    .context("the message is not hex (drop --hex to send text)")?
            } else {
                text.into_bytes()
            };
            let opts = cli::SendOpts {
                conn: conn.connection()?,
                to,
                conv,
                msg_type,
                payload: payload.into(),
                timeout: d(timeout),
                wait_delivered: d(wait_delivered),
            };
            let outcome = runtime()?.block_on(cli::send(opts))?;
            println!("{outcome}");
            Ok(())
        }
        Command::Recv {
            conn,
            count,
            all,
            json,
            timeout,
            connect_timeout,
        } => {
            let opts = cli::RecvOpts {
                conn: conn.connection()?,
                count,
                all,
                json,
                timeout: Some(d(timeout)),
                connect_timeout: d(connect_timeout),
            };
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr();
            runtime()?.block_on(cli::recv(opts, &mut out, &mut err))?;
            Ok(())
        }
        Command::Pull {
            conn,
            all,
            print,
            json,
            timeout,
        } => {
            let opts = cli::PullOpts {
                conn: conn.connection()?,
                all,
                print,
                json,
                timeout: d(timeout),
            };
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr();
            let o = runtime()?.block_on(cli::pull(opts, &mut out, &mut err))?;
            if all {
                let line = format!(
                    "pulled {} entries ({} messages, {} receipts, {} recalls) in {} pages, {:.1} ms ({:.0} entries/s)",
                    o.entries,
                    o.messages,
                    o.receipts,
                    o.recalls,
                    o.pages,
                    o.elapsed.as_secs_f64() * 1e3,
                    o.entries as f64 / o.elapsed.as_secs_f64().max(1e-9)
                );
                // Keep stdout pure JSON with --json.
                if json {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            }
            Ok(())
        }
        Command::Convs { conn, args } => run_convs(conn, args),
        Command::History { conn, args } => run_history(conn, args),
        Command::Read { conn, args } => run_read(conn, args),
        Command::Group { conn, args } => {
            let mut out = std::io::stdout().lock();
            runtime()?.block_on(cli::group_cmd(conn.connection()?, args, &mut out))?;
            Ok(())
        }
    }
}

/// `tern convs`: the list to stdout.
fn run_convs(conn: Conn, args: cli::ConvsArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    runtime()?.block_on(cli::convs(conn.connection()?, args, &mut out))?;
    Ok(())
}

/// `tern history`: records to stdout, the status line to stderr.
fn run_history(conn: Conn, args: cli::HistoryArgs) -> anyhow::Result<()> {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    runtime()?.block_on(cli::history(conn.connection()?, args, &mut out, &mut err))?;
    Ok(())
}

/// `tern read`: `stored seq=N` once the server stored it.
fn run_read(conn: Conn, args: cli::ReadArgs) -> anyhow::Result<()> {
    println!(
        "{}",
        runtime()?.block_on(cli::read(conn.connection()?, args))?
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.log.init_logging(tracing::Level::WARN);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tern: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
