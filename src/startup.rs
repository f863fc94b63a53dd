//! Building and running the service: pool, migrations, executor, HTTP server.

use std::fs::{File, TryLockError};
use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{ErrorHandlers, Logger};
use actix_web::{web, App, HttpServer};
use anyhow::{bail, Context};

use crate::api::{self, ApiError, AppState};
use crate::auth::accounts::bootstrap;
use crate::config::Config;
use crate::db::{batches, build_pool, run_migrations, Backend, ConnectionManager, WriteGate};
use crate::executor::{Executor, ExecutorHandle, Wakeup};

/// A built service: listening (if it runs the API) and executing (if it runs the executor).
pub struct Application {
    server: Option<Server>,
    port: Option<u16>,
    executor: Option<ExecutorHandle>,
    /// Held for the life of a SQLite executor, so a second one cannot contend.
    _executor_lock: Option<File>,
}

impl Application {
    /// Opens the database, migrates it, binds the listener and starts the executor.
    /// Call inside an actix system; `bind_addr` port 0 picks a free port.
    pub fn build(config: Config) -> anyhow::Result<Self> {
        let backend = Backend::of_url(&config.database_url);
        let pool = build_pool(&config.database_url, config.pool_size, config.db_timeout)?;
        let mut conn = pool.get().context("cannot connect to the database")?;
        run_migrations(&mut conn)?;
        print_once(&bootstrap(&mut conn, &config.bootstrap)?);
        drop(conn);
        log::info!("{} database ready", backend.name());

        let wakeup = Wakeup::default();
        let gate = WriteGate::for_backend(backend);
        let (server, port) = if config.role.runs_api() {
            let listener = TcpListener::bind(&config.bind_addr)
                .with_context(|| format!("cannot listen on {}", config.bind_addr))?;
            let port = listener.local_addr()?.port();
            let server = http_server(
                &config,
                listener,
                AppState {
                    pool: pool.clone(),
                    tokens: config.tokens.clone(),
                    wakeup: wakeup.clone(),
                    gate: gate.clone(),
                },
            )?;
            log::info!(
                "listening on http://{}",
                listener_addr(&config.bind_addr, port)
            );
            (Some(server), Some(port))
        } else {
            (None, None)
        };

        let mut executor_lock = None;
        let executor = if config.role.runs_executor() {
            if backend == Backend::Sqlite {
                executor_lock = Some(lock_sqlite_executor(&config.database_url)?);
                let requeued = batches::requeue_running_batches(&mut *pool.get()?)?;
                if requeued > 0 {
                    log::warn!("requeued {requeued} batches left RUNNING by a previous run");
                }
            }
            let listen_url = (backend == Backend::Postgres).then(|| config.database_url.clone());
            let mut executor_config = config.executor.clone();
            executor_config.workers =
                executor_workers(backend, config.executor.workers, config.pool_size);
            let executor = Executor::new(pool.clone(), executor_config, gate.clone());
            Some(executor.spawn(wakeup, listen_url, config.retention.clone()))
        } else {
            None
        };
        Ok(Application {
            server,
            port,
            executor,
            _executor_lock: executor_lock,
        })
    }

    /// The port the API listens on, if this process runs the API.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// A handle that stops the HTTP server.
    pub fn server_handle(&self) -> Option<ServerHandle> {
        self.server.as_ref().map(Server::handle)
    }

    /// Serves until SIGTERM or Ctrl-C (or the server handle stops it), then stops the
    /// executor after its running batch and returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        match self.server {
            Some(server) => server.await.context("the HTTP server failed")?,
            None => wait_for_signal().await?,
        }
        log::info!("shutting down");
        if let Some(executor) = self.executor {
            actix_web::rt::task::spawn_blocking(move || executor.stop()).await?;
        }
        log::info!("stopped");
        Ok(())
    }
}

fn http_server(config: &Config, listener: TcpListener, state: AppState) -> anyhow::Result<Server> {
    let max_body = config.max_body_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::new(max_body))
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                ApiError::bad_request(format!("invalid query parameters: {err}")).into()
            }))
            .app_data(
                web::PathConfig::default()
                    .error_handler(|err, _| ApiError::NotFound(format!("not found: {err}")).into()),
            )
            .wrap(ErrorHandlers::new().default_handler(api::json_error_body))
            // Paths only (`%U`): query strings may carry credentials.
            .wrap(
                Logger::new("%a %{method}xi %U %s %b %Dms")
                    .custom_request_replace("method", |req| req.method().to_string()),
            )
            .configure(api::configure)
            .default_service(web::to(api::not_found))
    })
    .listen(listener)?
    .shutdown_timeout(10);
    if config.http_workers > 0 {
        server = server.workers(config.http_workers);
    }
    Ok(server.run())
}

/// Batches applied at once: one on SQLite (one writer); on PostgreSQL as asked, but each
/// worker holds a connection for a whole batch, so two stay free for lease renewals and
/// the API.
fn executor_workers(backend: Backend, requested: usize, pool_size: u32) -> usize {
    if backend == Backend::Sqlite {
        return 1;
    }
    let room = (pool_size as usize).saturating_sub(2).max(1);
    if requested > room {
        log::warn!(
            "{requested} executor workers need more than the pool's {pool_size} connections; running {room}"
        );
    }
    requested.clamp(1, room)
}

fn listener_addr(bind_addr: &str, port: u16) -> String {
    match bind_addr.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{port}"),
        None => format!("{bind_addr}:{port}"),
    }
}

/// SQLite serves one node: a second executor on the same file would only contend for its
/// single writer lock, so it is refused with a clear message.
fn lock_sqlite_executor(database_url: &str) -> anyhow::Result<File> {
    let path = format!(
        "{}.executor.lock",
        ConnectionManager::sqlite_path(database_url)
    );
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {path}"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => bail!(
            "another stockbatch executor is already running on this SQLite database ({path} is locked); \
             SQLite runs one executor — use PostgreSQL to run several, or start this one with --role api"
        ),
        Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {path}")),
    }
}

/// Shows first-start credentials on the console, outside the log: generated secrets
/// appear here once and are stored only as hashes.
fn print_once(lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    println!("\n  stockbatch created its first accounts (shown only this once):");
    for line in lines {
        println!("    {line}");
    }
    println!();
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executor_workers_fit_the_pool_and_sqlite_runs_one() {
        assert_eq!(executor_workers(Backend::Sqlite, 4, 8), 1);
        assert_eq!(executor_workers(Backend::Postgres, 2, 8), 2);
        assert_eq!(executor_workers(Backend::Postgres, 8, 8), 6);
        assert_eq!(executor_workers(Backend::Postgres, 2, 2), 1);
        assert_eq!(executor_workers(Backend::Postgres, 0, 8), 1);
    }
}
