//! The route map: a TOML file of routes, each a method set and a path
//! template mapped to a Cedar action, a resource uid built from the path's
//! captures and context fields from captures, query parameters, headers or
//! token claims. Compiled against a policy pack: every problem is reported
//! as `file:line:column` (unknown action, a resource type the action does
//! not take, a capture the path does not have, routes that overlap with no
//! precedence, a context field the action does not declare or of a type a
//! request cannot carry).
//!
//! ```toml
//! unmatched = "forbidden"            # or "not_found"
//!
//! [[route]]
//! id = "read-environment"
//! methods = ["GET"]
//! path = "/orgs/{org}/environments/{env}"
//! action = "UseEnvironment"
//! resource = "Environment::{env}"
//!
//! [[route]]
//! id = "healthz"
//! methods = ["GET"]
//! path = "/healthz"
//! public = true                      # allowed without a principal or a decision
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::http::Method;
use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use cedar_policy_core::validator::types::{BoolType, EntityKind, Type};
use serde::Deserialize;
use toml::Spanned;

use super::template::Template;
use crate::diagnostics::{Problem, Problems};
use crate::engine::PolicyPack;

/// What an unmatched request gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// 403 `route_not_mapped` (the default: an unmapped route is denied).
    #[default]
    Forbidden,
    /// 404 `route_not_mapped`, where the door can answer it (not nginx's
    /// `auth_request`, which only takes 2xx, 401 and 403).
    NotFound,
}

/// The file as written, with the places of its values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    #[serde(default)]
    unmatched: Unmatched,
    #[serde(default, rename = "route")]
    routes: Vec<Spanned<RouteEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteEntry {
    id: Spanned<String>,
    #[serde(default)]
    methods: Option<Spanned<Vec<String>>>,
    path: Spanned<String>,
    #[serde(default)]
    public: bool,
    action: Option<Spanned<String>>,
    resource: Option<Spanned<String>>,
    #[serde(default)]
    context: HashMap<String, Spanned<toml::Value>>,
}

/// Where a value of the request is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A path capture.
    Path(String),
    /// A query parameter (its first occurrence).
    Query(String),
    /// A request header (lowercase name).
    Header(String),
    /// A claim of the verified token.
    Claim(String),
    /// A value written in the route map.
    Literal(serde_json::Value),
}

/// The type a context field has in the schema, as far as a request can
/// carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// `Bool`: `true` or `false`.
    Bool,
    /// `Long`: a decimal integer.
    Long,
    /// `String`: as given.
    String,
    /// An entity of this type, whose id is the value.
    Entity(EntityTypeName),
}

/// One context field of a route.
#[derive(Debug, Clone)]
pub struct ContextField {
    /// The field's name.
    pub name: String,
    /// Where its value comes from.
    pub source: Source,
    /// Its schema type.
    pub ty: FieldType,
    /// The schema requires it.
    pub required: bool,
}

/// What a matched route asks for.
#[derive(Debug, Clone)]
pub enum Target {
    /// Allowed without a principal or a decision (the operator's list).
    Public,
    /// A Cedar decision.
    Decide(Box<RouteDecision>),
}

/// The decision a route asks for.
#[derive(Debug, Clone)]
pub struct RouteDecision {
    /// The action.
    pub action: EntityUid,
    /// The resource's type.
    pub resource_type: EntityTypeName,
    /// Where the resource's id comes from (a capture or a literal).
    pub resource_id: Source,
    /// Context fields.
    pub context: Vec<ContextField>,
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The route's id (in logs, metrics and headers).
    pub id: Arc<str>,
    /// The methods it takes; `None` takes any.
    pub methods: Option<Vec<Method>>,
    /// Its path template.
    pub template: Template,
    /// What it decides.
    pub target: Target,
}

impl Route {
    /// Whether `method` is one of this route's.
    pub fn takes(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }
}

/// The compiled route map: routes in precedence order (most specific first).
#[derive(Debug, Clone, Default)]
pub struct RouteMap {
    /// Sorted: the first route that matches is the most specific one.
    routes: Vec<Route>,
    /// What an unmatched request gets.
    pub unmatched: Unmatched,
}

impl RouteMap {
    /// The most specific route taking `method` and `path` (decoded
    /// segments), with its captures.
    pub fn find(
        &self,
        method: &Method,
        path: &[String],
    ) -> Option<(&Route, Vec<(String, String)>)> {
        self.routes
            .iter()
            .filter(|route| route.takes(method))
            .find_map(|route| route.template.matches(path).map(|c| (route, c)))
    }

    /// The routes, most specific first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Builds a map from already compiled routes (sorted here); the
    /// overlap check is [`compile`]'s. Used by tests and benchmarks.
    pub fn from_routes(mut routes: Vec<Route>, unmatched: Unmatched) -> Self {
        routes.sort_by(|a, b| b.template.precedence(&a.template));
        Self { routes, unmatched }
    }
}

/// Reads and compiles the route map at `path` against `pack`.
pub fn load(path: &Path, pack: &PolicyPack, principal_type: &str) -> Result<RouteMap, Problems> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        Problems(vec![Problem::message(
            path.display().to_string(),
            format!("cannot read the route map: {error}"),
        )])
    })?;
    compile(path, &text, pack, principal_type)
}

/// Compiles route map `text` (read from `path`) against `pack`.
pub fn compile(
    path: &Path,
    text: &str,
    pack: &PolicyPack,
    principal_type: &str,
) -> Result<RouteMap, Problems> {
    let name = path.display().to_string();
    let source: Arc<str> = Arc::from(text);
    let mut problems = Problems(Vec::new());
    let file: RouteFile = match toml::from_str(text) {
        Ok(file) => file,
        Err(error) => {
            let offset = error.span().map_or(0, |s| s.start);
            let message = error.message().to_string();
            problems.push(Problem::message(&name, message).at(source, offset));
            return Err(problems);
        }
    };
    let mut at = |offset: usize, message: String| {
        problems.push(Problem::message(&name, message).at(source.clone(), offset));
    };
    let principal_type: Option<EntityTypeName> = match principal_type.parse() {
        Ok(ty) => Some(ty),
        Err(_) => {
            at(
                0,
                format!(
                    "`{principal_type}` (the principal type setting) is not an entity type name"
                ),
            );
            None
        }
    };
    let mut routes: Vec<(Route, usize)> = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for entry in &file.routes {
        let entry = entry.get_ref();
        let id = entry.id.get_ref().clone();
        if id.is_empty() {
            at(
                entry.id.span().start,
                "a route's `id` must not be empty".into(),
            );
        }
        if ids.insert(id.clone(), entry.id.span().start).is_some() {
            at(
                entry.id.span().start,
                format!("route id `{id}` is used twice"),
            );
        }
        let template = match Template::parse(entry.path.get_ref()) {
            Ok(template) => template,
            Err(message) => {
                at(entry.path.span().start, message);
                continue;
            }
        };
        let methods = match &entry.methods {
            None => None,
            Some(methods) => {
                let mut parsed = Vec::new();
                let mut any = false;
                for method in methods.get_ref() {
                    if method == "*" {
                        any = true;
                    } else if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                        at(
                            methods.span().start,
                            format!(
                                "`{method}` is not an HTTP method (upper case, or `*` for any)"
                            ),
                        );
                    } else if let Ok(m) = Method::from_bytes(method.as_bytes()) {
                        parsed.push(m);
                    }
                }
                if !any && parsed.is_empty() {
                    at(
                        methods.span().start,
                        "`methods` is empty: the route would match nothing".into(),
                    );
                }
                (!any).then_some(parsed)
            }
        };
        let target = if entry.public {
            if entry.action.is_some() || entry.resource.is_some() || !entry.context.is_empty() {
                at(
                    entry.id.span().start,
                    format!(
                        "route `{id}` is public: it takes no `action`, `resource` or `context`"
                    ),
                );
            }
            Target::Public
        } else {
            match decide_target(entry, &template, pack, principal_type.as_ref(), &mut at) {
                Some(target) => target,
                None => continue,
            }
        };
        let route = Route {
            id: Arc::from(id.as_str()),
            methods,
            template,
            target,
        };
        routes.push((route, entry.path.span().start));
    }
    // Two routes of equal rank that can match one path, for a method both
    // take, have no precedence between them.
    for (index, (route, offset)) in routes.iter().enumerate() {
        for (other, _) in routes.iter().take(index) {
            let methods_meet = match (&route.methods, &other.methods) {
                (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
                _ => true,
            };
            if methods_meet && route.template.overlaps(&other.template) {
                at(*offset, format!(
                    "route `{}` overlaps route `{}`: both can match the same request and neither is more specific",
                    route.id, other.id
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(RouteMap::from_routes(
        routes.into_iter().map(|(route, _)| route).collect(),
        file.unmatched,
    ))
}

fn decide_target(
    entry: &RouteEntry,
    template: &Template,
    pack: &PolicyPack,
    principal_type: Option<&EntityTypeName>,
    at: &mut impl FnMut(usize, String),
) -> Option<Target> {
    let id = entry.id.get_ref();
    let (Some(action_text), Some(resource_text)) = (&entry.action, &entry.resource) else {
        at(
            entry.id.span().start,
            format!("route `{id}` needs an `action` and a `resource` (or `public = true`)"),
        );
        return None;
    };
    let action_offset = action_text.span().start;
    let action = match action_uid(action_text.get_ref()) {
        Some(action) if pack.actions.contains_key(&action) => action,
        _ => {
            at(
                action_offset,
                format!(
                    "unknown action `{}`: the schema does not declare it",
                    action_text.get_ref()
                ),
            );
            return None;
        }
    };
    let schema = &pack.schema;
    if let (Some(principal_type), Some(mut principals)) =
        (principal_type, schema.principals_for_action(&action))
    {
        if !principals.any(|ty| ty == principal_type) {
            at(action_offset, format!("action `{action}` does not take a principal of type `{principal_type}` (the gateway's principal type)"));
        }
    }
    let resource_offset = resource_text.span().start;
    let (resource_type, resource_id) = match resource_spec(resource_text.get_ref()) {
        Ok(spec) => spec,
        Err(message) => {
            at(resource_offset, message);
            return None;
        }
    };
    let takes_resource = schema
        .resources_for_action(&action)
        .is_some_and(|mut types| types.any(|ty| *ty == resource_type));
    if !takes_resource {
        at(
            resource_offset,
            format!("action `{action}` does not take a resource of type `{resource_type}`"),
        );
    }
    let captures: Vec<&str> = template.captures().collect();
    if let Source::Path(name) = &resource_id {
        if !captures.contains(&name.as_str()) {
            at(
                resource_offset,
                format!(
                    "`{{{name}}}` is not captured by the path `{}`",
                    entry.path.get_ref()
                ),
            );
        }
    }
    // The action's context as declared.
    let validator = schema.as_ref();
    let declared: HashMap<String, (Option<FieldType>, bool)> =
        match validator.context_type(action.as_ref()) {
            Some(Type::Record { attrs, .. }) => attrs
                .iter()
                .map(|(name, attr)| {
                    (
                        name.to_string(),
                        (field_type(&attr.attr_type), attr.is_required),
                    )
                })
                .collect(),
            _ => HashMap::new(),
        };
    let mut context = Vec::new();
    let mut names: Vec<&String> = entry.context.keys().collect();
    names.sort();
    for name in names {
        let Some(value) = entry.context.get(name) else {
            continue;
        };
        let offset = value.span().start;
        let Some((ty, required)) = declared.get(name) else {
            at(
                offset,
                format!("action `{action}` declares no context field `{name}`"),
            );
            continue;
        };
        let Some(ty) = ty.clone() else {
            at(offset, format!("context field `{name}` of `{action}` has a type a request cannot carry (only Bool, Long, String and entities)"));
            continue;
        };
        let source = match value.get_ref() {
            toml::Value::String(text) => match source_spec(text) {
                Some(source) => source,
                None => {
                    at(offset, format!("`{text}` is not a source: `path:NAME`, `query:NAME`, `header:NAME` or `claim:NAME`"));
                    continue;
                }
            },
            toml::Value::Integer(n) if ty == FieldType::Long => Source::Literal((*n).into()),
            toml::Value::Boolean(b) if ty == FieldType::Bool => Source::Literal((*b).into()),
            other => {
                at(
                    offset,
                    format!(
                        "context field `{name}` of `{action}` is {}, but `{}` is {}",
                        type_label(&ty),
                        other,
                        other.type_str()
                    ),
                );
                continue;
            }
        };
        if let Source::Path(capture) = &source {
            if !captures.contains(&capture.as_str()) {
                at(
                    offset,
                    format!(
                        "`{{{capture}}}` is not captured by the path `{}`",
                        entry.path.get_ref()
                    ),
                );
                continue;
            }
        }
        context.push(ContextField {
            name: name.clone(),
            source,
            ty,
            required: *required,
        });
    }
    for (name, (_, required)) in &declared {
        if *required && !entry.context.contains_key(name) {
            at(action_offset, format!("action `{action}` requires context field `{name}`: map it under `[route.context]`"));
        }
    }
    Some(Target::Decide(Box::new(RouteDecision {
        action,
        resource_type,
        resource_id,
        context,
    })))
}

/// `ReadOrg` or `Action::"ReadOrg"` (or a namespaced action uid).
fn action_uid(text: &str) -> Option<EntityUid> {
    if text.contains("::") {
        text.parse().ok()
    } else {
        Some(EntityUid::from_type_name_and_id(
            "Action".parse().ok()?,
            EntityId::new(text),
        ))
    }
}

/// `Type::{capture}` or `Type::"literal id"`.
fn resource_spec(text: &str) -> Result<(EntityTypeName, Source), String> {
    let bad = || format!("resource `{text}` must be `Type::{{capture}}` or `Type::\"id\"`");
    let (type_name, id) = text.rsplit_once("::").ok_or_else(bad)?;
    let type_name: EntityTypeName = type_name.parse().map_err(|_| bad())?;
    let source = if let Some(name) = id.strip_prefix('{').and_then(|i| i.strip_suffix('}')) {
        Source::Path(name.trim_start_matches('*').to_string())
    } else if let Some(literal) = id.strip_prefix('"').and_then(|i| i.strip_suffix('"')) {
        Source::Literal(literal.into())
    } else {
        return Err(bad());
    };
    Ok((type_name, source))
}

/// `path:NAME`, `query:NAME`, `header:NAME`, `claim:NAME`.
fn source_spec(text: &str) -> Option<Source> {
    let (kind, name) = text.split_once(':')?;
    if name.is_empty() {
        return None;
    }
    Some(match kind {
        "path" => Source::Path(name.to_string()),
        "query" => Source::Query(name.to_string()),
        "header" => {
            axum::http::HeaderName::from_bytes(name.as_bytes()).ok()?;
            Source::Header(name.to_ascii_lowercase())
        }
        "claim" => Source::Claim(name.to_string()),
        _ => return None,
    })
}

fn field_type(declared: &Type) -> Option<FieldType> {
    match declared {
        Type::Bool(BoolType::AnyBool) => Some(FieldType::Bool),
        Type::Long => Some(FieldType::Long),
        Type::String => Some(FieldType::String),
        Type::Entity(EntityKind::Entity(lub)) => lub
            .get_single_entity()
            .map(|ty| FieldType::Entity(EntityTypeName::from(ty.clone()))),
        _ => None,
    }
}

fn type_label(ty: &FieldType) -> String {
    match ty {
        FieldType::Bool => "a Bool".into(),
        FieldType::Long => "a Long".into(),
        FieldType::String => "a String".into(),
        FieldType::Entity(ty) => format!("an entity of type `{ty}`"),
    }
}
