//! API key operations. After a key is expired or deleted the key cache is
//! told at once, so the key stops working on the next request.

use chrono::{DateTime, Utc};

use super::{Admin, Caller, Done, Error, Mutation, Resource, Result, snapshot};
use crate::state::ApiKeyRef;
use crate::types::{ApiKey, Scope};

/// Which key an expire/delete request means: by id or by prefix, not both
/// (as in Headscale). A prefix may be given in the listing form
/// (`cskey-api-<prefix>-***`). An id of 0 counts as none.
pub fn key_ref(id: Option<u64>, prefix: &str) -> Result<ApiKeyRef> {
    let prefix = prefix.trim();
    let prefix = prefix
        .strip_prefix("cskey-api-")
        .map(|p| p.trim_end_matches("-***"))
        .unwrap_or(prefix);
    match (id.filter(|i| *i != 0), prefix.is_empty()) {
        (None, true) => Err(Error::InvalidArgument(
            "an API key id or prefix is required".into(),
        )),
        (None, false) => Ok(ApiKeyRef::Prefix(prefix.to_string())),
        (Some(id), true) => i64::try_from(id)
            .map(ApiKeyRef::Id)
            .map_err(|_| Error::NotFound("API key not found".into())),
        (Some(_), false) => Err(Error::InvalidArgument(
            "give an API key id or a prefix, not both".into(),
        )),
    }
}

fn object(k: &ApiKeyRef) -> String {
    match k {
        ApiKeyRef::Id(id) => format!("apikey:{id}"),
        ApiKeyRef::Prefix(p) => format!("apikey:{p}"),
    }
}

impl Admin {
    /// Keys in id order (public parts only: the hash never leaves `types`).
    pub async fn list_api_keys(&self, caller: &Caller) -> Result<Vec<ApiKey>> {
        self.read(caller, Resource::ApiKeys)?;
        let mut keys = self.state().list_api_keys().await?;
        keys.sort_by_key(|k| k.id);
        Ok(keys)
    }

    async fn api_key(&self, k: &ApiKeyRef) -> Option<ApiKey> {
        let keys = self.state().list_api_keys().await.ok()?;
        keys.into_iter().find(|x| match k {
            ApiKeyRef::Id(id) => x.id == *id,
            ApiKeyRef::Prefix(p) => x.prefix.eq_ignore_ascii_case(p),
        })
    }

    /// Creates a key; returns it with its secret text, shown only now.
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        scope: Scope,
        expiration: Option<DateTime<Utc>>,
    ) -> Result<(ApiKey, String)> {
        let m = Mutation::new(Resource::ApiKeys, "apikey.create");
        self.mutate(caller, m, async {
            let (key, secret) = self.state().create_api_key(scope, expiration).await?;
            // Usable at once, not only after the cache's next read.
            self.keys().invalidate();
            Ok(Done::new((key.clone(), secret))
                .object(format!("apikey:{}", key.id))
                .after(snapshot::api_key(&key)))
        })
        .await
    }

    pub async fn expire_api_key(&self, caller: &Caller, key: ApiKeyRef) -> Result<()> {
        let before = self.api_key(&key).await;
        let m = Mutation::new(Resource::ApiKeys, "apikey.expire")
            .on(before
                .as_ref()
                .map(|k| format!("apikey:{}", k.id))
                .unwrap_or_else(|| object(&key)))
            .before(before.as_ref().map(snapshot::api_key));
        self.mutate(caller, m, async {
            self.state().expire_api_key(key.clone()).await?;
            self.keys().invalidate();
            let mut done = Done::new(());
            if let Some(k) = self.api_key(&key).await {
                done = done.after(snapshot::api_key(&k));
            }
            Ok(done)
        })
        .await
    }

    pub async fn delete_api_key(&self, caller: &Caller, key: ApiKeyRef) -> Result<()> {
        let before = self.api_key(&key).await;
        let m = Mutation::new(Resource::ApiKeys, "apikey.delete")
            .on(before
                .as_ref()
                .map(|k| format!("apikey:{}", k.id))
                .unwrap_or_else(|| object(&key)))
            .before(before.as_ref().map(snapshot::api_key));
        self.mutate(caller, m, async {
            self.state().delete_api_key(key.clone()).await?;
            self.keys().invalidate();
            Ok(Done::new(()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_refs_by_id_or_prefix() {
        assert_eq!(key_ref(Some(3), ""), Ok(ApiKeyRef::Id(3)));
        assert_eq!(
            key_ref(None, "cskey-api-0123456789ab-***"),
            Ok(ApiKeyRef::Prefix("0123456789ab".into()))
        );
        assert_eq!(
            key_ref(Some(0), "0123456789ab"),
            Ok(ApiKeyRef::Prefix("0123456789ab".into()))
        );
        assert!(matches!(key_ref(None, " "), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            key_ref(Some(1), "ab"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            key_ref(Some(u64::MAX), ""),
            Err(Error::NotFound(_))
        ));
    }
}
