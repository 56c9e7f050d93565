//! Where the local API listens: a Unix socket (the default; only the
//! owner may connect, the socket file being mode 0600) or a loopback TCP
//! port whose every request must carry `Authorization: Bearer <token>`,
//! the token read from a file (created with a random token, mode 0600, if
//! it does not exist).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::SidecarError;
use crate::http::auth;

/// Where to listen.
#[derive(Debug, Clone)]
pub enum Listen {
    /// A Unix socket at this path (replaced if it exists).
    Unix(PathBuf),
    /// Loopback TCP, with the bearer token.
    Tcp {
        /// Address; must be a loopback address.
        addr: SocketAddr,
        /// The token (see [`Listen::tcp`]).
        token: String,
    },
}

impl Listen {
    /// TCP on `addr` with the token in `token_file`, created if missing.
    pub fn tcp(addr: SocketAddr, token_file: &Path) -> Result<Listen, SidecarError> {
        if !addr.ip().is_loopback() {
            return Err(SidecarError::Listen {
                what: addr.to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the sidecar listens on loopback only (use 127.0.0.1 or ::1)",
                ),
            });
        }
        let err = |source| SidecarError::TokenFile {
            path: token_file.to_path_buf(),
            source,
        };
        let token = match std::fs::read_to_string(token_file) {
            Ok(t) => t.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let t = hex::encode(rand::random::<[u8; 32]>());
                std::fs::write(token_file, format!("{t}\n")).map_err(err)?;
                std::fs::set_permissions(token_file, std::fs::Permissions::from_mode(0o600))
                    .map_err(err)?;
                t
            }
            Err(e) => return Err(err(e)),
        };
        if token.len() < 16 {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the token must be at least 16 characters",
            )));
        }
        Ok(Listen::Tcp { addr, token })
    }

    /// The bearer token, over TCP.
    pub fn token(&self) -> Option<&String> {
        match self {
            Listen::Unix(_) => None,
            Listen::Tcp { token, .. } => Some(token),
        }
    }
}

/// A bound listener.
pub enum Bound {
    /// Unix socket and its path.
    Unix(tokio::net::UnixListener, PathBuf),
    /// TCP.
    Tcp(tokio::net::TcpListener),
}

impl Bound {
    /// `unix:PATH` or `http://ADDR`.
    pub fn describe(&self) -> String {
        match self {
            Bound::Unix(_, p) => format!("unix:{}", p.display()),
            Bound::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("http://{a}"),
                Err(_) => "http://?".into(),
            },
        }
    }
}

/// Binds the listener.
pub async fn bind(listen: &Listen) -> Result<Bound, SidecarError> {
    match listen {
        Listen::Unix(path) => {
            let err = |source| SidecarError::Listen {
                what: format!("unix:{}", path.display()),
                source,
            };
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(e)),
            }
            let l = tokio::net::UnixListener::bind(path).map_err(err)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
            Ok(Bound::Unix(l, path.clone()))
        }
        Listen::Tcp { addr, .. } => tokio::net::TcpListener::bind(addr)
            .await
            .map(Bound::Tcp)
            .map_err(|source| SidecarError::Listen {
                what: addr.to_string(),
                source,
            }),
    }
}

async fn require_token(token: String, req: Request, next: Next) -> Response {
    // Liveness probes need no credentials.
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    match auth::check(req.headers(), std::slice::from_ref(&token)) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Serves `app` until `shutdown`.
pub async fn serve(
    bound: Bound,
    app: Router,
    token: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), SidecarError> {
    let app = match token {
        Some(t) => app.layer(axum::middleware::from_fn(move |req, next| {
            require_token(t.clone(), req, next)
        })),
        None => app,
    };
    let what = bound.describe();
    let r = match bound {
        Bound::Unix(l, path) => {
            let r = axum::serve(l, app).with_graceful_shutdown(shutdown).await;
            let _ = std::fs::remove_file(path);
            r
        }
        Bound::Tcp(l) => axum::serve(l, app).with_graceful_shutdown(shutdown).await,
    };
    r.map_err(|source| SidecarError::Listen { what, source })
}
