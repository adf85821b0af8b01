//! The DERP map from its sources, as Headscale builds it
//! (`hscontrol/derp/derp.go`): the maps at `derp.urls` (Tailscale's JSON,
//! fetched over HTTP(S)), then the files at `derp.paths` (Headscale's YAML,
//! or JSON), merged region by region (a later source wins; a `null` region
//! removes one, as in Headscale's `derp-example.yaml`), then the embedded
//! region, which wins over any source.
//!
//! At start a file that cannot be read or parsed stops the server (bad
//! input gets a clear error); an unreachable URL is logged and retried, and
//! an empty resulting map, when sources were configured, stops it too
//! (Headscale: "empty initial DERP map"). With `derp.auto_update_enabled`
//! every source is read again each `derp.update_frequency`; a source that
//! fails keeps its last good map and the failure is logged, and a map that
//! changed reaches every client through the state writer as a delta.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::config::Derp;
use crate::state::StateHandle;
use crate::tailcfg::{DerpMap, DerpRegion, derp_map::FIELD_NAMES};

/// Headscale's `HTTPTimeout` for each fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// A DERP map is a few KiB (Tailscale's own about 20); refuse absurd ones.
const MAX_MAP_BYTES: usize = 4 << 20;
/// First retry of a source that has never loaded; doubles up to the
/// refresh period.
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// Where the DERP map comes from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub urls: Vec<String>,
    pub paths: Vec<PathBuf>,
    /// The embedded relay's region, added last.
    pub embedded: Option<DerpRegion>,
    /// `Some(period)` with `derp.auto_update_enabled`.
    pub refresh: Option<Duration>,
}

impl Sources {
    pub fn new(config: &Derp, embedded: Option<DerpRegion>) -> Sources {
        Sources {
            urls: config.urls.clone(),
            paths: config.paths.clone(),
            embedded,
            refresh: config
                .auto_update_enabled
                .then_some(config.update_frequency),
        }
    }

    fn configured(&self) -> bool {
        !self.urls.is_empty() || !self.paths.is_empty()
    }
}

/// One source's regions: `None` values remove a region.
type Regions = BTreeMap<String, Option<DerpRegion>>;

/// The last good regions of every source, in merge order.
pub struct Loader {
    sources: Sources,
    client: reqwest::Client,
    /// Per URL, then per path; `None` until it first loaded.
    last_good: Vec<Option<Regions>>,
}

impl Loader {
    pub fn new(sources: Sources) -> anyhow::Result<Loader> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("clawscale/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the DERP map HTTP client")?;
        let n = sources.urls.len() + sources.paths.len();
        Ok(Loader {
            sources,
            client,
            last_good: vec![None; n],
        })
    }

    /// The first map: a file that fails is an error; a URL that fails is
    /// logged (and retried by [`Loader::refresh_forever`]).
    pub async fn initial(&mut self) -> anyhow::Result<DerpMap> {
        let failures = self.reload().await;
        for (source, e) in &failures {
            if source.starts_with("derp.paths") {
                anyhow::bail!("{source}: {e:#}");
            }
            tracing::error!(%source, error = %format!("{e:#}"), "cannot load a DERP map; will retry");
        }
        let map = self.merged();
        if map.regions.is_empty() && self.sources.configured() {
            anyhow::bail!(
                "the DERP map is empty: no region from derp.urls or derp.paths{}",
                if self.sources.embedded.is_some() {
                    ""
                } else {
                    " and the embedded DERP server's region is not added"
                }
            );
        }
        Ok(map)
    }

    /// Reads every source again, keeping each failing one's last good
    /// regions; returns the failures, named by config key.
    async fn reload(&mut self) -> Vec<(String, anyhow::Error)> {
        let mut failures = Vec::new();
        for i in 0..self.sources.urls.len() {
            let url = self.sources.urls[i].clone();
            match self.fetch(&url).await {
                Ok(r) => self.last_good[i] = Some(r),
                Err(e) => failures.push((format!("derp.urls {url}"), e)),
            }
        }
        let offset = self.sources.urls.len();
        for (j, path) in self.sources.paths.clone().iter().enumerate() {
            match read_file(path).await {
                Ok(r) => self.last_good[offset + j] = Some(r),
                Err(e) => failures.push((format!("derp.paths {}", path.display()), e)),
            }
        }
        failures
    }

    async fn fetch(&self, url: &str) -> anyhow::Result<Regions> {
        let resp = self.client.get(url).send().await?.error_for_status()?;
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_MAP_BYTES as u64)
        {
            anyhow::bail!("larger than {MAX_MAP_BYTES} bytes");
        }
        let body = resp.bytes().await?;
        anyhow::ensure!(
            body.len() <= MAX_MAP_BYTES,
            "larger than {MAX_MAP_BYTES} bytes"
        );
        let value: serde_json::Value = serde_json::from_slice(&body).context("not JSON")?;
        parse(value)
    }

    /// Every source's last good regions merged, then the embedded region.
    fn merged(&self) -> DerpMap {
        let mut regions: Regions = BTreeMap::new();
        for r in self.last_good.iter().flatten() {
            regions.extend(r.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(e) = &self.sources.embedded {
            regions.insert(e.region_id.to_string(), Some(e.clone()));
        }
        DerpMap {
            regions: regions
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect(),
            omit_default_regions: true,
            ..Default::default()
        }
    }

    /// Refreshes the map for ever: each refresh period with
    /// `auto_update_enabled`, and sooner (backing off) while a source has
    /// never loaded. Returns when there is nothing left to do.
    pub async fn refresh_forever(mut self, state: StateHandle) {
        if !self.sources.configured() {
            return;
        }
        let mut retry = FIRST_RETRY;
        loop {
            let never_loaded = self.last_good.iter().any(Option::is_none);
            let wait = match (self.sources.refresh, never_loaded) {
                (Some(period), false) => period,
                (Some(period), true) => retry.min(period),
                (None, true) => retry,
                (None, false) => return,
            };
            tokio::time::sleep(wait).await;
            retry = (retry * 2).min(self.sources.refresh.unwrap_or(Duration::from_secs(300)));
            let failures = self.reload().await;
            for (source, e) in &failures {
                tracing::warn!(%source, error = %format!("{e:#}"), "DERP map source failed; keeping its last good map");
            }
            match state.set_derp_map(self.merged()).await {
                Ok(true) => tracing::info!("DERP map changed; sent to every client"),
                Ok(false) => tracing::debug!("DERP map unchanged"),
                Err(e) => {
                    tracing::warn!(error = %e, "could not publish the DERP map");
                    return;
                }
            }
        }
    }
}

/// A DERP map file: YAML (Headscale's lower-case keys) or JSON.
async fn read_file(path: &std::path::Path) -> anyhow::Result<Regions> {
    let text = tokio::fs::read_to_string(path).await?;
    let yaml: serde_norway::Value = serde_norway::from_str(&text).context("not YAML or JSON")?;
    parse(yaml_to_json(yaml)?)
}

/// Regions of one DERP map document, with Go's field-name matching.
fn parse(mut doc: serde_json::Value) -> anyhow::Result<Regions> {
    canonical_keys(&mut doc);
    let serde_json::Value::Object(mut top) = doc else {
        anyhow::bail!("not a DERP map (expected an object with Regions)");
    };
    let regions = match top.remove("Regions") {
        None | Some(serde_json::Value::Null) => return Ok(Regions::new()),
        Some(serde_json::Value::Object(r)) => r,
        Some(_) => anyhow::bail!("Regions is not a map of region id to region"),
    };
    let mut out = Regions::new();
    for (key, value) in regions {
        let id: i32 = key
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .with_context(|| format!("region key {key:?} is not a positive region id"))?;
        if value.is_null() {
            out.insert(id.to_string(), None);
            continue;
        }
        let mut region: DerpRegion =
            serde_json::from_value(value).with_context(|| format!("region {id}"))?;
        if region.region_id == 0 {
            region.region_id = id;
        }
        anyhow::ensure!(
            region.region_id == id,
            "region {id} says RegionID {}",
            region.region_id
        );
        out.insert(id.to_string(), Some(region));
    }
    Ok(out)
}

/// Renames keys that match a DERP map field case-insensitively to Go's
/// spelling (`regionid` → `RegionID`), as Go's JSON decoder and Headscale's
/// YAML files expect.
fn canonical_keys(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut v) in old {
                canonical_keys(&mut v);
                let k = FIELD_NAMES
                    .iter()
                    .find(|f| f.eq_ignore_ascii_case(&k))
                    .map_or(k, |f| f.to_string());
                map.insert(k, v);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(canonical_keys),
        _ => {}
    }
}

/// YAML → JSON, with scalar map keys as strings (`900:` is a region id).
fn yaml_to_json(v: serde_norway::Value) -> anyhow::Result<serde_json::Value> {
    use serde_norway::Value as Y;
    Ok(match v {
        Y::Null => serde_json::Value::Null,
        Y::Bool(b) => b.into(),
        Y::Number(n) => serde_json::to_value(&n)?,
        Y::String(s) => s.into(),
        Y::Sequence(items) => items
            .into_iter()
            .map(yaml_to_json)
            .collect::<anyhow::Result<Vec<_>>>()?
            .into(),
        Y::Mapping(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => anyhow::bail!("unsupported map key {other:?}"),
                };
                out.insert(key, yaml_to_json(v)?);
            }
            out.into()
        }
        Y::Tagged(t) => yaml_to_json(t.value)?,
    })
}

#[cfg(test)]
mod tests;
