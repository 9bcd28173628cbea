//! The search figures (BENCHMARKS.md, issue 14): p50 and p99 of the four
//! "which?" questions, in process (`engine::search` on a generated store of
//! one size, one thread), with how many candidates were decided and found:
//!
//! - resource search "which environments may this user use";
//! - resource search "which models may this user use";
//! - subject search "who may administer this org" (`CreateEnvironment`);
//! - action search "what may this user do on this thunk".
//!
//! Users are drawn across orgs, 15% of them org admins, as in `gen`'s
//! requests.

use std::time::Instant;

use cedar_policy::EntityTypeName;
use serde::Serialize;

use crate::engine::{search, search_candidates, PolicyPack, SearchRequest, Searched};
use crate::entities::EntityMap;
use crate::gen::{org_id, thunk_id, uid, user_id, Rng};

/// One question's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SearchFigure {
    /// Which question.
    pub question: &'static str,
    /// Searches measured.
    pub samples: usize,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Mean candidates decided per search.
    pub mean_candidates: f64,
    /// Mean results per search.
    pub mean_results: f64,
}

const QUESTIONS: [&str; 4] = [
    "resource: environments a user may use",
    "resource: models a user may use",
    "subject: who may administer an org",
    "action: what a user may do on a thunk",
];

/// Measures each question `samples` times on `store` (generated with `orgs`
/// orgs).
pub fn measure_searches(
    pack: &PolicyPack,
    store: &EntityMap,
    orgs: usize,
    samples: usize,
    seed: u64,
) -> Result<Vec<SearchFigure>, String> {
    let parse = |name: &str| -> Result<EntityTypeName, String> {
        name.parse().map_err(|e| format!("type `{name}`: {e}"))
    };
    let (environment, model, user) = (parse("Environment")?, parse("Model")?, parse("User")?);
    let mut rng = Rng::new(seed);
    let mut figures = Vec::new();
    for (index, question) in QUESTIONS.iter().enumerate() {
        let mut times = Vec::with_capacity(samples);
        let (mut candidates, mut results) = (0usize, 0usize);
        for _ in 0..samples {
            let org = rng.below(orgs);
            // Users 0..6 are the org's owner and admins.
            let member = if rng.chance(15) {
                rng.below(6)
            } else {
                6 + rng.below(900)
            };
            let principal = Some(uid("User", &user_id(org, member)));
            let action = |name: &str| Some(uid("Action", name));
            let (request, searched) = match index {
                0 | 1 => (
                    SearchRequest {
                        principal,
                        action: action(if index == 0 {
                            "UseEnvironment"
                        } else {
                            "UseModel"
                        }),
                        resource: None,
                        context: None,
                    },
                    Searched::Resources(if index == 0 {
                        environment.clone()
                    } else {
                        model.clone()
                    }),
                ),
                2 => (
                    SearchRequest {
                        principal: None,
                        action: action("CreateEnvironment"),
                        resource: Some(uid("Org", &org_id(org))),
                        context: None,
                    },
                    Searched::Subjects(user.clone()),
                ),
                _ => (
                    SearchRequest {
                        principal,
                        action: None,
                        resource: Some(uid("Thunk", &thunk_id(org, rng.below(300)))),
                        context: None,
                    },
                    Searched::Actions,
                ),
            };
            let started = Instant::now();
            let found = search(pack, store, &request, &searched);
            times.push(started.elapsed().as_secs_f64() * 1e6);
            results += found.len();
            candidates += search_candidates(pack, store, &request, &searched).len();
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let last = times.len().saturating_sub(1);
            times
                .get(((last as f64) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let count = samples.max(1) as f64;
        figures.push(SearchFigure {
            question,
            samples,
            p50_us: at(0.5),
            p99_us: at(0.99),
            mean_candidates: candidates as f64 / count,
            mean_results: results as f64 / count,
        });
    }
    Ok(figures)
}
