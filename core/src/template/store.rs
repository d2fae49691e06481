//! Operator-edited templates, versioned: [`TemplateStore`] keeps every
//! saved version of each (locale, email) and which one is active;
//! [`InMemoryTemplateStore`] here, `resetkit-postgres` has a PostgreSQL one.
//!
//! Saving is the console's job: it runs the service's lint first
//! ([`ResetService::check_templates`](crate::ResetService::check_templates))
//! and stores only templates that pass; a running service picks saved
//! templates up through
//! [`ResetService::reload_templates_from`](crate::ResetService::reload_templates_from)
//! (call it at start, and on every instance after a change).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::time::SystemTime;
//! use resetkit::mail::EmailKind;
//! use resetkit::template::{InMemoryTemplateStore, TemplateSource, TemplateStore};
//!
//! let store = InMemoryTemplateStore::default();
//! let v1 = TemplateSource::new("Reset", "{{ link }}", "<a href=\"{{ link }}\">x</a>");
//! let n = store.save("en", EmailKind::Reset, &v1, "ops", SystemTime::now()).await.unwrap();
//! assert_eq!(n, 1);
//! assert_eq!(store.active().await.unwrap()[0].source, v1);
//! # });
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use super::{TemplateSource, Templates};
use crate::error::StoreError;
use crate::mail::EmailKind;

/// One saved version of one email's template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVersion {
    /// Locale (lower case).
    pub locale: String,
    /// Which email.
    pub kind: EmailKind,
    /// 1, 2, ... per (locale, email).
    pub version: u32,
    /// The template.
    pub source: TemplateSource,
    /// When it was saved.
    pub saved_at: SystemTime,
    /// Who saved it (as the host's guard named them).
    pub saved_by: String,
    /// Whether it is the version in use.
    pub active: bool,
}

/// Versioned template storage. Every method is atomic on its own.
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Stores `source` as the next version of (`locale`, `kind`) and makes
    /// it the active one; returns its version number. Earlier versions stay.
    async fn save(
        &self,
        locale: &str,
        kind: EmailKind,
        source: &TemplateSource,
        saved_by: &str,
        at: SystemTime,
    ) -> Result<u32, StoreError>;

    /// Every version of (`locale`, `kind`), newest first.
    async fn versions(&self, locale: &str, kind: EmailKind) -> Result<Vec<TemplateVersion>, StoreError>;

    /// Makes `version` the active one (a restore); returns whether it exists.
    async fn activate(&self, locale: &str, kind: EmailKind, version: u32) -> Result<bool, StoreError>;

    /// The active version of every (locale, email) that has one.
    async fn active(&self) -> Result<Vec<TemplateVersion>, StoreError>;
}

/// `base` with every active stored version applied over it.
pub fn apply_stored(mut base: Templates, active: &[TemplateVersion]) -> Templates {
    for version in active {
        base.locale_mut(&version.locale)
            .set(version.kind, version.source.clone());
    }
    base
}

/// Versions by (locale, email kind).
type VersionMap = BTreeMap<(String, &'static str), Vec<TemplateVersion>>;

/// Templates in memory; clones share the same versions.
#[derive(Debug, Clone, Default)]
pub struct InMemoryTemplateStore {
    versions: Arc<Mutex<VersionMap>>,
}

fn key(locale: &str, kind: EmailKind) -> (String, &'static str) {
    (locale.to_ascii_lowercase(), kind.as_str())
}

#[async_trait]
impl TemplateStore for InMemoryTemplateStore {
    async fn save(
        &self,
        locale: &str,
        kind: EmailKind,
        source: &TemplateSource,
        saved_by: &str,
        at: SystemTime,
    ) -> Result<u32, StoreError> {
        let mut all = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        let list = all.entry(key(locale, kind)).or_default();
        let version = u32::try_from(list.len()).unwrap_or(u32::MAX).saturating_add(1);
        for v in list.iter_mut() {
            v.active = false;
        }
        list.push(TemplateVersion {
            locale: locale.to_ascii_lowercase(),
            kind,
            version,
            source: source.clone(),
            saved_at: at,
            saved_by: saved_by.to_owned(),
            active: true,
        });
        Ok(version)
    }

    async fn versions(&self, locale: &str, kind: EmailKind) -> Result<Vec<TemplateVersion>, StoreError> {
        let all = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        let mut list = all.get(&key(locale, kind)).cloned().unwrap_or_default();
        list.reverse();
        Ok(list)
    }

    async fn activate(&self, locale: &str, kind: EmailKind, version: u32) -> Result<bool, StoreError> {
        let mut all = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(list) = all.get_mut(&key(locale, kind)) else {
            return Ok(false);
        };
        if !list.iter().any(|v| v.version == version) {
            return Ok(false);
        }
        for v in list.iter_mut() {
            v.active = v.version == version;
        }
        Ok(true)
    }

    async fn active(&self) -> Result<Vec<TemplateVersion>, StoreError> {
        let all = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(all
            .values()
            .filter_map(|list| list.iter().find(|v| v.active).cloned())
            .collect())
    }
}
