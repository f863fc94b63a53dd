//! Building and running the service: pool, migrations, executor, HTTP server.

use std::fs::{File, TryLockError};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, Logger};
use actix_web::{web, App};
use anyhow::{bail, Context};

use crate::api::{self, http_io, ApiError, AppState, BodyBudget, MetricsAccess, MetricsSource};
use crate::auth::accounts::bootstrap;
use crate::auth::hasher::Hasher;
use crate::config::Config;
use crate::db::{
    batches, build_pool, notifications, run_migrations, Backend, ConnectionManager, WriteGate,
};
use crate::executor::{Completions, Executor, ExecutorHandle, Wakeup};
use crate::metrics::http_request;
use crate::notify::{Dispatcher, DispatcherHandle, Outbox, Sealer};

/// A built service: listening (if it runs the API) and executing (if it runs the executor).
pub struct Application {
    server: Option<Server>,
    /// `/metrics` on its own listener (`STOCKBATCH_METRICS_BIND`).
    metrics_server: Option<ServerHandle>,
    port: Option<u16>,
    executor: Option<ExecutorHandle>,
    dispatcher: Option<DispatcherHandle>,
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
        let completions = Completions::default();
        let gate = WriteGate::for_backend(backend);
        let sealer = Arc::new(Sealer::new(config.notify.sealing_key.clone()));
        let (webhook_wakeup, email_wakeup) = (Wakeup::default(), Wakeup::default());
        let outbox = Outbox::new(&config.notify, webhook_wakeup.clone(), email_wakeup.clone());
        // The executor's and the dispatchers' own connections: a flood of API requests
        // never leaves them without one, and sending never waits for a batch's.
        let executor_workers = executor_workers(config.executor.workers);
        let worker_pools = if config.role.runs_executor() {
            Some((
                build_pool(
                    &config.database_url,
                    2 * executor_workers as u32 + RETENTION_CONNECTIONS,
                    config.db_timeout,
                )?,
                build_pool(
                    &config.database_url,
                    DISPATCHER_CONNECTIONS,
                    config.db_timeout,
                )?,
            ))
        } else {
            None
        };
        let mut pools = vec![("api", pool.clone())];
        if let Some((executor_pool, dispatcher_pool)) = &worker_pools {
            pools.push(("executor", executor_pool.clone()));
            pools.push(("dispatcher", dispatcher_pool.clone()));
        }
        let pools = Arc::new(pools);
        let metrics_server = match &config.metrics.bind {
            Some(bind) => Some(metrics_server(
                bind,
                MetricsSource {
                    pool: pool.clone(),
                    pools: pools.clone(),
                },
            )?),
            None => None,
        };

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
                    hasher: Hasher::start(config.hasher),
                    verified_secrets: Default::default(),
                    bodies: BodyBudget::new(config.bodies.clone()),
                    settings: config.api.clone(),
                    wakeup: wakeup.clone(),
                    completions: completions.clone(),
                    gate: gate.clone(),
                    outbox: outbox.clone(),
                    sealer: sealer.clone(),
                    allow_private_destinations: config.notify.allow_private_destinations,
                    metrics_access: MetricsAccess {
                        token: config.metrics.token.clone(),
                    },
                    pools: pools.clone(),
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
        let mut dispatcher = None;
        let executor = if let Some((executor_pool, dispatcher_pool)) = worker_pools {
            if backend == Backend::Sqlite {
                executor_lock = Some(lock_sqlite_executor(&config.database_url)?);
                let requeued = batches::requeue_running_batches(&mut *pool.get()?)?;
                if requeued > 0 {
                    crate::metrics::metrics()
                        .executor_events
                        .get_or_create(&crate::metrics::EventLabels { event: "requeue" })
                        .inc_by(requeued as u64);
                    log::warn!("requeued {requeued} batches left RUNNING by a previous run");
                }
                let released = notifications::release_leases(&mut *pool.get()?)?;
                if released > 0 {
                    log::warn!("{released} deliveries and emails left in flight by a previous run will be sent again");
                }
            }
            let listen_url = (backend == Backend::Postgres).then(|| config.database_url.clone());
            let mut executor_config = config.executor.clone();
            executor_config.workers = executor_workers;
            let executor = Executor::new(
                executor_pool,
                executor_config,
                gate.clone(),
                completions.clone(),
            )
            .with_outbox(outbox.clone());
            dispatcher = Some(
                Dispatcher::new(
                    dispatcher_pool,
                    gate.clone(),
                    config.notify.clone(),
                    sealer,
                    webhook_wakeup,
                    email_wakeup,
                )
                .spawn()?,
            );
            Some(executor.spawn(wakeup, listen_url, config.retention.clone()))
        } else {
            None
        };
        Ok(Application {
            server,
            metrics_server,
            port,
            executor,
            dispatcher,
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
        if let Some(metrics) = self.metrics_server {
            metrics.stop(true).await;
        }
        if let Some(executor) = self.executor {
            actix_web::rt::task::spawn_blocking(move || executor.stop()).await?;
        }
        if let Some(dispatcher) = self.dispatcher {
            actix_web::rt::task::spawn_blocking(move || dispatcher.stop()).await?;
        }
        log::info!("stopped");
        Ok(())
    }
}

fn http_server(config: &Config, listener: TcpListener, state: AppState) -> anyhow::Result<Server> {
    let app = move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                ApiError::bad_request(format!("invalid query parameters: {err}")).into()
            }))
            .app_data(
                web::PathConfig::default()
                    .error_handler(|err, _| ApiError::NotFound(format!("not found: {err}")).into()),
            )
            .wrap(ErrorHandlers::new().default_handler(api::json_error_body))
            .wrap(
                DefaultHeaders::new()
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::CACHE_CONTROL, "no-store")),
            )
            // Paths only (`%U`): query strings may carry credentials.
            .wrap(
                Logger::new("%a %{method}xi %U %s %b %Dms")
                    .custom_request_replace("method", |req| req.method().to_string()),
            )
            .wrap_fn(|req, srv| {
                let route = req.match_pattern();
                let method = req.method().clone();
                let started = Instant::now();
                let response = srv.call(req);
                async move {
                    let response = response.await;
                    let status = match &response {
                        Ok(r) => r.status(),
                        Err(e) => e.as_response_error().status_code(),
                    };
                    http_request(route, &method, status, started.elapsed());
                    response
                }
            })
            .configure(api::configure)
            .default_service(web::to(api::not_found))
    };
    Ok(http_io::serve(
        listener,
        config.http_workers,
        http_io::CLIENT_REQUEST_TIMEOUT,
        app,
    )?)
}

/// `/metrics` alone, open, on `bind`; it runs beside the API (or instead of it).
fn metrics_server(bind: &str, source: MetricsSource) -> anyhow::Result<ServerHandle> {
    let listener =
        TcpListener::bind(bind).with_context(|| format!("cannot listen on {bind} for metrics"))?;
    log::info!(
        "metrics on http://{}/metrics",
        listener_addr(bind, listener.local_addr()?.port())
    );
    let server = http_io::serve(listener, 1, http_io::CLIENT_REQUEST_TIMEOUT, move || {
        App::new()
            .app_data(web::Data::new(source.clone()))
            .wrap(ErrorHandlers::new().default_handler(api::json_error_body))
            .route("/metrics", web::get().to(api::metrics_open))
            .default_service(web::to(api::not_found))
    })?;
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok(handle)
}

/// Connections of the executor's pool beside two per worker (its batch and its lease
/// renewals): the retention pruner's.
const RETENTION_CONNECTIONS: u32 = 1;
/// Connections of the dispatchers, each taken only to claim or record an attempt.
const DISPATCHER_CONNECTIONS: u32 = 2;
/// Most batches one process applies at once.
const MAX_EXECUTOR_WORKERS: usize = 32;

/// Batches applied at once, as asked. On SQLite their writes still take turns at the one
/// write lock, but one worker reads and checks its batch while another writes.
fn executor_workers(requested: usize) -> usize {
    requested.clamp(1, MAX_EXECUTOR_WORKERS)
}

/// Hands memory freed after a large batch back to the system: glibc keeps freed small
/// blocks in its heaps until told to trim them.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes every allocation of 1 MiB or more its own mapping, returned to the system when
/// freed. glibc otherwise raises that threshold after large frees, and then keeps the
/// memory of a burst of large request bodies or password hashes for the life of the process.
/// Also keeps glibc to one heap (arena) per core, not up to eight per core: after a burst of
/// large batches every thread's heap is left with long-lived blocks (SQLite's caches)
/// scattered among freed ones, and fewer heaps hold fewer such pages.
pub fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        // SAFETY: mallopt only changes allocator settings; called before other threads start.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
            libc::mallopt(libc::M_ARENA_MAX, cores as libc::c_int);
        }
    }
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
    fn executor_workers_are_as_asked_within_bounds() {
        assert_eq!(executor_workers(2), 2);
        assert_eq!(executor_workers(0), 1);
        assert_eq!(executor_workers(100), MAX_EXECUTOR_WORKERS);
    }
}
