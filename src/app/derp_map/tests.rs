use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use super::*;
use crate::state::testing;
use crate::tailcfg::DerpNode;

/// Headscale's `derp-example.yaml` (v0.29.2) shape: yaml.v3 lower-case
/// keys, integer region keys, a null region.
const HEADSCALE_YAML: &str = r#"
regions:
  1: null # Disable DERP region with ID 1
  900:
    regionid: 900
    regioncode: custom
    regionname: My Region
    nodes:
      - name: 900a
        regionid: 900
        hostname: myderp.example.com
        ipv4: 198.51.100.1
        ipv6: 2001:db8::1
        stunport: 0
        stunonly: false
        derpport: 0
"#;

/// Tailscale's JSON as served at `/derpmap/default` (trimmed).
fn tailscale_json(code: &str) -> String {
    format!(
        r#"{{"Regions":{{"1":{{"RegionID":1,"RegionCode":"{code}","RegionName":"New York City",
        "Latitude":40.7,"Longitude":-74.0,"Nodes":[{{"Name":"1f","RegionID":1,
        "HostName":"derp1f.tailscale.com","IPv4":"199.38.181.104","IPv6":"2607:f740:f::bc",
        "CanPort80":true}}]}},
        "2":{{"RegionID":2,"RegionCode":"sfo","RegionName":"San Francisco","NoMeasureNoHome":true,
        "Nodes":[{{"Name":"2d","RegionID":2,"HostName":"derp2d.tailscale.com","STUNOnly":true}}]}}}}}}"#
    )
}

fn embedded() -> DerpRegion {
    DerpRegion {
        region_id: 900,
        region_code: "clawscale".into(),
        nodes: vec![DerpNode {
            name: "900a".into(),
            region_id: 900,
            host_name: "10.0.0.1".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn sources(urls: Vec<String>, paths: Vec<PathBuf>, emb: Option<DerpRegion>) -> Sources {
    Sources {
        urls,
        paths,
        embedded: emb,
        refresh: None,
    }
}

#[test]
fn reads_headscale_yaml_with_lowercase_keys() {
    let yaml: serde_norway::Value = serde_norway::from_str(HEADSCALE_YAML).unwrap();
    let regions = parse(yaml_to_json(yaml).unwrap()).unwrap();
    assert_eq!(regions["1"], None, "null removes a region");
    let r = regions["900"].as_ref().unwrap();
    assert_eq!((r.region_id, r.region_code.as_str()), (900, "custom"));
    let n = &r.nodes[0];
    assert_eq!(n.host_name, "myderp.example.com");
    assert_eq!(
        (n.ipv4.as_str(), n.ipv6.as_str()),
        ("198.51.100.1", "2001:db8::1")
    );
    assert_eq!((n.stun_port, n.derp_port, n.stun_only), (0, 0, false));
}

#[test]
fn reads_tailscale_json_and_keeps_every_field() {
    let value: serde_json::Value = serde_json::from_str(&tailscale_json("nyc")).unwrap();
    let regions = parse(value).unwrap();
    let nyc = regions["1"].as_ref().unwrap();
    assert_eq!(nyc.latitude, 40.7);
    assert!(nyc.nodes[0].can_port_80);
    let sfo = regions["2"].as_ref().unwrap();
    assert!(sfo.no_measure_no_home && sfo.nodes[0].stun_only);
    // Sent on unchanged.
    let json = serde_json::to_value(sfo).unwrap();
    assert_eq!(json["NoMeasureNoHome"], true);
    assert_eq!(json["Nodes"][0]["STUNOnly"], true);
}

#[test]
fn rejects_what_is_not_a_derp_map() {
    for bad in [
        r#"["a"]"#,
        r#"{"Regions": [1]}"#,
        r#"{"Regions": {"x": {}}}"#,
        r#"{"Regions": {"0": {}}}"#,
        r#"{"Regions": {"5": {"RegionID": 6}}}"#,
        r#"{"Regions": {"5": {"Nodes": "n"}}}"#,
    ] {
        let v: serde_json::Value = serde_json::from_str(bad).unwrap();
        assert!(parse(v).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn files_merge_in_order_and_the_embedded_region_wins() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.yaml");
    std::fs::write(&a, tailscale_json("nyc")).unwrap();
    // Removes region 1 of the first file, overrides 900 with its own.
    std::fs::write(&b, HEADSCALE_YAML).unwrap();
    let mut l = Loader::new(sources(vec![], vec![a.clone(), b.clone()], None)).unwrap();
    let m = l.initial().await.unwrap();
    let ids: Vec<&str> = m.regions.keys().map(String::as_str).collect();
    assert_eq!(ids, ["2", "900"]);
    assert_eq!(m.regions["900"].region_code, "custom");

    let mut l = Loader::new(sources(vec![], vec![a, b], Some(embedded()))).unwrap();
    let m = l.initial().await.unwrap();
    assert_eq!(m.regions["900"].region_code, "clawscale");
}

#[tokio::test]
async fn a_broken_file_stops_the_start_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("derp.yaml");
    std::fs::write(&bad, "regions: [").unwrap();
    let mut l = Loader::new(sources(vec![], vec![bad.clone()], Some(embedded()))).unwrap();
    let e = format!("{:#}", l.initial().await.unwrap_err());
    assert!(e.contains("derp.paths") && e.contains("derp.yaml"), "{e}");
    let missing = dir.path().join("missing.yaml");
    let mut l = Loader::new(sources(vec![], vec![missing], Some(embedded()))).unwrap();
    assert!(l.initial().await.is_err());
}

/// A local HTTP server whose DERP map (or failure) the test sets.
#[derive(Clone)]
struct Remote(Arc<Mutex<Result<String, StatusCode>>>);

impl Remote {
    async fn start(body: String) -> (Remote, String) {
        let remote = Remote(Arc::new(Mutex::new(Ok(body))));
        let r = remote.clone();
        let app = Router::new().route(
            "/derpmap/default",
            get(move || {
                let r = r.clone();
                async move { r.0.lock().unwrap().clone() }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/derpmap/default", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        (remote, url)
    }

    fn set(&self, v: Result<String, StatusCode>) {
        *self.0.lock().unwrap() = v;
    }
}

#[tokio::test]
async fn an_unreachable_url_at_start_is_logged_and_an_empty_map_refused() {
    let (remote, url) = Remote::start(String::new()).await;
    remote.set(Err(StatusCode::BAD_GATEWAY));
    let mut l = Loader::new(sources(vec![url.clone()], vec![], Some(embedded()))).unwrap();
    let m = l.initial().await.unwrap();
    assert_eq!(m.regions.keys().collect::<Vec<_>>(), ["900"]);
    let mut l = Loader::new(sources(vec![url], vec![], None)).unwrap();
    let e = l.initial().await.unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
}

#[tokio::test]
async fn refresh_publishes_changes_and_keeps_the_last_good_map() {
    let (remote, url) = Remote::start(tailscale_json("nyc")).await;
    let (_dir, state) = testing::temp_state(Duration::from_secs(3600)).await;
    let mut s = sources(vec![url], vec![], Some(embedded()));
    s.refresh = Some(Duration::from_millis(50));
    let mut l = Loader::new(s).unwrap();
    let first = l.initial().await.unwrap();
    assert_eq!(first.regions["1"].region_code, "nyc");
    assert_eq!(first.regions.len(), 3);
    state.set_derp_map(first.clone()).await.unwrap();
    let session = state.sessions().open(crate::types::NodeId(1));
    let task = tokio::spawn(l.refresh_forever(state.clone()));

    remote.set(Ok(tailscale_json("jfk")));
    let code = |state: &StateHandle| {
        state.world().settings.derp_map.map().regions["1"]
            .region_code
            .clone()
    };
    let t0 = std::time::Instant::now();
    while code(&state) != "jfk" {
        assert!(t0.elapsed() < Duration::from_secs(5), "refresh not applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(session.take().settings, "open sessions are told");

    // The source fails: its last good regions stay, nothing is published.
    remote.set(Err(StatusCode::INTERNAL_SERVER_ERROR));
    let generation = state.world().generation;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(code(&state), "jfk");
    assert_eq!(state.world().settings.derp_map.map().regions.len(), 3);
    assert_eq!(state.world().generation, generation);
    remote.set(Ok("not json".into()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(state.world().generation, generation);
    task.abort();
}
