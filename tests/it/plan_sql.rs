//! Query plans against a real SQL database: for generated data, the rows
//! the plan's reference SQL translation selects (SQLite, parameters bound)
//! are exactly the documents the sidecar allows, deciding each one. Ids
//! and titles carry quotes and SQL, which must stay data.

use std::collections::{BTreeSet, HashMap, HashSet};

use cedar_policy::{Entity, EntityUid, RestrictedExpression};
use cedar_sidecar::engine::plan::sql::{to_sql, SqlParam};
use cedar_sidecar::engine::{
    decide, plan, DecisionRequest, PackSources, Plan, PolicyPack, RequestEntityPolicy, Verdict,
};
use cedar_sidecar::entities::{EntityMap, StoredEntity};
use proptest::prelude::*;

fn pack() -> PolicyPack {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan-docs");
    PolicyPack::load(&PackSources {
        policies: root.join("policies"),
        schema: root.join("schema.cedarschema"),
    })
    .unwrap()
}

fn uid(ty: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.parse().unwrap(), id.parse().unwrap())
}

struct Gen(u64);

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Ids with quotes and SQL in them: they must stay data.
fn user_id(i: usize) -> String {
    format!("u{i}'; DROP TABLE documents; --\"")
}

struct Document {
    uid: EntityUid,
    owner: EntityUid,
    org: EntityUid,
    public: bool,
    level: i64,
    title: Option<String>,
    folder: EntityUid,
}

struct World {
    store: EntityMap,
    documents: Vec<Document>,
    users: Vec<EntityUid>,
    /// Every folder's ancestors (the closure the application keeps).
    folder_ancestors: HashMap<EntityUid, Vec<EntityUid>>,
}

fn world(seed: u64) -> World {
    let mut g = Gen(seed | 1);
    let mut stored = Vec::new();
    let mut add = |uid: EntityUid, parents: Vec<EntityUid>| {
        let parents: HashSet<EntityUid> = parents.into_iter().collect();
        stored.push(StoredEntity::new(Entity::new_no_attrs(uid, parents)).unwrap());
    };
    let orgs: Vec<EntityUid> = (0..3).map(|i| uid("Org", &format!("o{i}'s"))).collect();
    for org in &orgs {
        add(org.clone(), vec![]);
    }
    let teams: Vec<EntityUid> = (0..4).map(|i| uid("Team", &format!("t{i}"))).collect();
    for team in &teams {
        add(team.clone(), vec![orgs[g.below(orgs.len())].clone()]);
    }
    let users: Vec<EntityUid> = (0..8).map(|i| uid("User", &user_id(i))).collect();
    for user in &users {
        let mut parents = Vec::new();
        if g.below(2) == 0 {
            parents.push(orgs[g.below(orgs.len())].clone());
        }
        if g.below(2) == 0 {
            parents.push(teams[g.below(teams.len())].clone());
        }
        add(user.clone(), parents);
    }
    let mut folders = vec![uid("Folder", "shared")];
    let mut folder_ancestors: HashMap<EntityUid, Vec<EntityUid>> = HashMap::new();
    folder_ancestors.insert(folders[0].clone(), vec![]);
    add(folders[0].clone(), vec![]);
    for i in 1..6 {
        let folder = uid("Folder", &format!("f{i}\"x"));
        let parent = (g.below(3) != 0).then(|| folders[g.below(folders.len())].clone());
        let mut ancestors = Vec::new();
        if let Some(parent) = &parent {
            ancestors.push(parent.clone());
            ancestors.extend(folder_ancestors[parent].clone());
        }
        folder_ancestors.insert(folder.clone(), ancestors);
        add(folder.clone(), parent.into_iter().collect());
        folders.push(folder);
    }
    let titles = [None, Some("secret"), Some("it's fine"), Some("' OR 1=1 --")];
    let documents = (0..40)
        .map(|i| Document {
            uid: uid("Document", &format!("d{i}'")),
            owner: users[g.below(users.len())].clone(),
            org: orgs[g.below(orgs.len())].clone(),
            public: g.below(2) == 0,
            level: g.below(6) as i64,
            title: titles[g.below(titles.len())].map(str::to_string),
            folder: folders[g.below(folders.len())].clone(),
        })
        .collect::<Vec<_>>();
    // Documents are stored too, only so the sidecar can decide on each
    // (the plan itself never reads them).
    for doc in &documents {
        let mut attrs = HashMap::from([
            (
                "owner".to_string(),
                RestrictedExpression::new_entity_uid(doc.owner.clone()),
            ),
            (
                "org".to_string(),
                RestrictedExpression::new_entity_uid(doc.org.clone()),
            ),
            (
                "public".to_string(),
                RestrictedExpression::new_bool(doc.public),
            ),
            (
                "level".to_string(),
                RestrictedExpression::new_long(doc.level),
            ),
        ]);
        if let Some(title) = &doc.title {
            attrs.insert(
                "title".to_string(),
                RestrictedExpression::new_string(title.clone()),
            );
        }
        let entity =
            Entity::new(doc.uid.clone(), attrs, HashSet::from([doc.folder.clone()])).unwrap();
        stored.push(StoredEntity::new(entity).unwrap());
    }
    World {
        store: EntityMap::from_entities(stored, 1),
        documents,
        users,
        folder_ancestors,
    }
}

fn database(world: &World) -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch(
        "CREATE TABLE documents (uid TEXT PRIMARY KEY, owner TEXT NOT NULL, org TEXT NOT NULL,
                                 public INTEGER NOT NULL, level INTEGER NOT NULL, title TEXT);
         CREATE TABLE ancestors (descendant TEXT NOT NULL, ancestor TEXT NOT NULL);",
    )
    .unwrap();
    for doc in &world.documents {
        db.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
            rusqlite::params![
                doc.uid.to_string(),
                doc.owner.to_string(),
                doc.org.to_string(),
                doc.public,
                doc.level,
                doc.title
            ],
        )
        .unwrap();
        let mut above = vec![doc.folder.clone()];
        above.extend(world.folder_ancestors[&doc.folder].clone());
        for ancestor in above {
            db.execute(
                "INSERT INTO ancestors VALUES (?, ?)",
                rusqlite::params![doc.uid.to_string(), ancestor.to_string()],
            )
            .unwrap();
        }
    }
    db
}

fn selected(db: &rusqlite::Connection, plan: &Plan) -> BTreeSet<String> {
    let clause = match plan {
        Plan::AlwaysAllow => return all(db),
        Plan::AlwaysDeny => return BTreeSet::new(),
        Plan::Conditional(condition) => to_sql(condition, "documents").unwrap(),
    };
    let query = format!("SELECT uid FROM documents WHERE {}", clause.clause);
    let mut statement = db.prepare(&query).unwrap();
    let params: Vec<rusqlite::types::Value> = clause
        .params
        .iter()
        .map(|p| match p {
            SqlParam::Text(t) => rusqlite::types::Value::Text(t.clone()),
            SqlParam::Integer(n) => rusqlite::types::Value::Integer(*n),
        })
        .collect();
    statement
        .query_map(rusqlite::params_from_iter(params), |row| {
            row.get::<_, String>(0)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn all(db: &rusqlite::Connection) -> BTreeSet<String> {
    let mut statement = db.prepare("SELECT uid FROM documents").unwrap();
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn check(seed: u64) {
    let pack = pack();
    let world = world(seed);
    let db = database(&world);
    let view = uid("Action", "view");
    let mut conditional_and_partial = 0;
    let mut principals = world.users.clone();
    principals.push(uid("User", "nobody'"));
    for principal in &principals {
        let planned = plan(
            &pack,
            &world.store,
            principal,
            &view,
            &"Document".parse().unwrap(),
            None,
        )
        .unwrap();
        let allowed: BTreeSet<String> = world
            .documents
            .iter()
            .filter(|doc| {
                let request = DecisionRequest {
                    principal: principal.clone(),
                    action: view.clone(),
                    resource: doc.uid.clone(),
                    context: None,
                    entities: Vec::new(),
                };
                decide(&pack, &world.store, &request, &RequestEntityPolicy::DEFAULT)
                    .unwrap()
                    .verdict
                    == Verdict::Allow
            })
            .map(|doc| doc.uid.to_string())
            .collect();
        let rows = selected(&db, &planned);
        assert_eq!(rows, allowed, "{principal} {planned:?}");
        if matches!(planned, Plan::Conditional(_)) && rows.len() < world.documents.len() {
            conditional_and_partial += 1;
        }
    }
    // The plans were real conditions, not all-or-nothing.
    assert!(conditional_and_partial > 0);
    // The quotes and SQL in ids and titles stayed data.
    assert_eq!(all(&db).len(), world.documents.len());
}

#[test]
fn a_known_world_plans_as_expected() {
    check(1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn plan_rows_are_exactly_the_allowed_documents(seed in any::<u64>()) {
        check(seed);
    }
}

/// A forbid that errors whatever the resource denies every decision (fail
/// closed), so the plan is `always_deny`, even where a permit holds for
/// every resource (Cedar's partial decision alone would say Allow).
#[test]
fn a_forbid_that_errors_makes_the_plan_deny() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan-docs");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    for entry in std::fs::read_dir(root.join("policies")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("policies").join(entry.file_name()),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("policies/limits.cedar"),
        "@id(\"boss-views-all\")\npermit (principal == User::\"boss\", action, resource);\n\
         @id(\"budget\")\nforbid (principal, action, resource) when { context.n + 1 > 100 };\n",
    )
    .unwrap();
    let schema = std::fs::read_to_string(root.join("schema.cedarschema"))
        .unwrap()
        .replace(
            "action view appliesTo { principal: User, resource: Document };",
            "action view appliesTo { principal: User, resource: Document, context: { n: Long } };",
        );
    assert!(schema.contains("context: { n: Long }"));
    std::fs::write(dir.path().join("schema.cedarschema"), schema).unwrap();
    let pack = PolicyPack::load(&PackSources {
        policies: dir.path().join("policies"),
        schema: dir.path().join("schema.cedarschema"),
    })
    .unwrap();
    let boss = uid("User", "boss");
    let store = EntityMap::from_entities(
        [StoredEntity::new(Entity::new_no_attrs(boss.clone(), HashSet::new())).unwrap()],
        1,
    );
    let view = uid("Action", "view");
    let document = "Document".parse().unwrap();
    let plan_with = |n: i64| {
        plan(
            &pack,
            &store,
            &boss,
            &view,
            &document,
            Some(&serde_json::json!({"n": n})),
        )
        .unwrap()
    };
    // Every document but others' secrets.
    assert!(
        matches!(plan_with(1), Plan::Conditional(_)),
        "{:?}",
        plan_with(1)
    );
    assert_eq!(plan_with(i64::MAX), Plan::AlwaysDeny, "the forbid errors");
    assert_eq!(plan_with(500), Plan::AlwaysDeny, "the forbid holds");
}
