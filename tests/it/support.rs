//! Shared helpers: loading fixture folders.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use cedar_sidecar::engine::{load_links_file, PackSources, PolicyPack};
use cedar_sidecar::entities::{load_entities_file, EntityMap, LinkMap};
use cedar_sidecar::state::{SharedState, Snapshot};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture folder under `tests/fixtures/`.
pub fn fixture(path: &str) -> PathBuf {
    repo().join("tests/fixtures").join(path)
}

/// Loads `policies/`, `schema.cedarschema` (or `schema/`), `entities.json`
/// and, when present, the template links of `links.json`.
pub fn load_fixture(dir: &Path) -> Snapshot {
    let schema = if dir.join("schema.cedarschema").exists() {
        dir.join("schema.cedarschema")
    } else {
        dir.join("schema")
    };
    let pack = PolicyPack::load(&PackSources {
        policies: dir.join("policies"),
        schema,
    })
    .unwrap_or_else(|p| panic!("{}", p.render()));
    let entities = load_entities_file(&dir.join("entities.json"), &pack.schema)
        .unwrap_or_else(|p| panic!("{}", p.render()));
    let links = if dir.join("links.json").exists() {
        load_links_file(&dir.join("links.json"), &pack).unwrap_or_else(|p| panic!("{}", p.render()))
    } else {
        LinkMap::default()
    };
    Snapshot {
        pack: Arc::new(pack),
        entities: EntityMap::from_entities(entities, 7).with_links(links),
        pack_loaded_at: SystemTime::now(),
    }
}

/// The shipped pack and demo data, as `serve` loads them by default.
pub fn shipped() -> Snapshot {
    let root = repo();
    let pack = PolicyPack::load(&PackSources {
        policies: root.join("policies"),
        schema: root.join("schema"),
    })
    .unwrap_or_else(|p| panic!("{}", p.render()));
    let entities = load_entities_file(&root.join("demo/entities.json"), &pack.schema)
        .unwrap_or_else(|p| panic!("{}", p.render()));
    Snapshot {
        pack: Arc::new(pack),
        entities: EntityMap::from_entities(entities, 1),
        pack_loaded_at: SystemTime::now(),
    }
}

/// Shared state serving the shipped pack.
pub fn shipped_state() -> Arc<SharedState> {
    Arc::new(SharedState::ready(shipped()))
}
