//! Keeping every instance's templates in step with a shared template store.
//!
//! An operator saves a template on one instance; the others learn it from
//! the store. A store that can tell cheaply whether anything changed
//! ([`TemplateChanges`]: a counter bumped by every save or restore) lets
//! each instance look once per interval, off the request path, and reload
//! only when it moved: no cost per request, one small read per interval.
//!
//! ```no_run
//! # async fn demo(service: resetkit::ResetService, store: std::sync::Arc<dyn resetkit::flow::TemplateChanges>) {
//! use std::time::Duration;
//! // In every instance, next to the web server:
//! service.follow_templates(store, Duration::from_secs(1), std::future::pending::<()>()).await;
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::flow::ResetService;
use crate::template::TemplateStore;

/// A template store shared by several instances that can tell cheaply
/// whether its active templates changed (a capability on top of
/// [`TemplateStore`]; PostgreSQL's store has it).
#[async_trait]
pub trait TemplateChanges: TemplateStore {
    /// A number that changes whenever a save or a restore changes what
    /// [`TemplateStore::active`] returns (one cheap read).
    async fn generation(&self) -> Result<u64, StoreError>;
}

impl ResetService {
    /// Reloads the templates from `store` whenever its
    /// [`generation`](TemplateChanges::generation) moves, looking every
    /// `every`, until `shutdown` completes: a template saved on any
    /// instance is in force here within about `every` (plus one reload).
    /// Loads once at start. Store errors and templates that fail the lint
    /// are logged and retried at the next look; the service keeps the
    /// templates it has.
    pub async fn follow_templates<F: Future<Output = ()>>(
        &self,
        store: Arc<dyn TemplateChanges>,
        every: Duration,
        shutdown: F,
    ) {
        tokio::pin!(shutdown);
        let mut seen: Option<u64> = None;
        loop {
            match store.generation().await {
                Ok(now) if seen != Some(now) => match self.reload_templates_from(store.as_ref()).await {
                    Ok(active) => {
                        if seen.is_some() {
                            tracing::info!(generation = now, active, "templates changed: reloaded");
                        }
                        seen = Some(now);
                    }
                    Err(error) => tracing::error!(%error, "reloading the changed templates failed"),
                },
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "reading the template store's generation failed"),
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}
