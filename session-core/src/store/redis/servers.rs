//! [`Servers`]: one Redis server or a Redis Cluster, and how one command reaches the node
//! that serves its key.

use std::sync::Arc;

use redis::{ErrorKind, FromRedisValue, RedisError, ScriptInvocation, ServerErrorKind};

use super::{cluster::Cluster, link::Link};
use crate::StoreError;

/// Where a [`RedisStore`](super::RedisStore)'s keys live.
pub(super) enum Servers {
    One(Arc<Link>),
    Cluster(Arc<Cluster>),
}

/// One command, built for the generation of the connection it goes through (or built
/// once and borrowed, when it does not depend on it).
pub(super) enum Request<'a> {
    Cmd(redis::Cmd),
    CmdRef(&'a redis::Cmd),
    Script(ScriptInvocation<'static>),
    ScriptRef(&'a ScriptInvocation<'static>),
}

impl Servers {
    /// Sends the request `build` makes to the node serving `key`, returning the reply and
    /// the generation of the node that gave it.
    ///
    /// A redirection (`MOVED`: the command did not run) reads the cluster's slots again
    /// and sends once more; every other failure is reported, and a failure of the node or
    /// of the cluster (`CLUSTERDOWN`, `TRYAGAIN`, a lost connection) makes the next
    /// command read the slots again first.
    pub(super) async fn send<'a, T, B>(
        &self,
        key: &str,
        build: B,
    ) -> Result<(T, Arc<str>), StoreError>
    where
        T: FromRedisValue + Send,
        B: Fn(&str) -> Result<Request<'a>, StoreError>,
    {
        let mut redirected = false;
        loop {
            let link = self.link_for(key).await?;
            let conn = match link.conn().await {
                Ok(conn) => conn,
                Err(err) => {
                    self.node_failed();
                    return Err(err);
                }
            };
            let request = build(&conn.generation)?;
            let result = link
                .run_on(conn, |mut conn| async move {
                    match &request {
                        Request::Cmd(cmd) => cmd.query_async::<T>(&mut conn).await,
                        Request::CmdRef(cmd) => cmd.query_async::<T>(&mut conn).await,
                        Request::Script(script) => script.invoke_async::<T>(&mut conn).await,
                        Request::ScriptRef(script) => script.invoke_async::<T>(&mut conn).await,
                    }
                })
                .await;
            match result {
                Ok(reply) => return Ok(reply),
                Err(err) => match (self, redirection(&err)) {
                    (Self::Cluster(cluster), Some(Redirection::Moved)) if !redirected => {
                        redirected = true;
                        cluster.mark_stale();
                    }
                    (Self::Cluster(cluster), Some(_)) => {
                        cluster.mark_stale();
                        return Err(err.into());
                    }
                    _ => {
                        if err.is_io_error() || err.is_connection_dropped() || err.is_timeout() {
                            self.node_failed();
                        }
                        return Err(err.into());
                    }
                },
            }
        }
    }

    async fn link_for(&self, key: &str) -> Result<Arc<Link>, StoreError> {
        match self {
            Self::One(link) => Ok(link.clone()),
            Self::Cluster(cluster) => cluster.link_for(key.as_bytes()).await,
        }
    }

    /// Every node that holds keys: the server, or each master of the cluster.
    pub(super) async fn masters(&self) -> Result<Vec<Arc<Link>>, StoreError> {
        match self {
            Self::One(link) => Ok(vec![link.clone()]),
            Self::Cluster(cluster) => cluster.masters().await,
        }
    }

    pub(super) fn node_failed(&self) {
        if let Self::Cluster(cluster) = self {
            cluster.mark_stale();
        }
    }
}

enum Redirection {
    /// The slot lives on another node now; the command did not run.
    Moved,
    /// The slot is migrating, or the cluster cannot serve it; the command did not run.
    Unsettled,
}

fn redirection(err: &RedisError) -> Option<Redirection> {
    match err.kind() {
        ErrorKind::Server(ServerErrorKind::Moved) => Some(Redirection::Moved),
        ErrorKind::Server(
            ServerErrorKind::Ask | ServerErrorKind::TryAgain | ServerErrorKind::ClusterDown,
        ) => Some(Redirection::Unsettled),
        _ => None,
    }
}
