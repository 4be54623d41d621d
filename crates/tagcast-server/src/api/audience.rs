//! Who a push reaches: Tencent's flat `Condition`, tagcast's nested `Audience` extension, and the
//! exact audience count (dry run) extension.

use serde_json::{Map, Value};
use tagcast_audience::{Cmp, Expr};
use tagcast_proto::{ApiError, Code};
use tagcast_store::{AttrSchema, RoaringBitmap, TaskKind};

use super::tags::check_tags;
use super::{Ctx, Reply, reply, shown};

/// Deepest nesting of an `Audience` expression.
const MAX_DEPTH: usize = 16;
/// Most nodes in an `Audience` expression.
const MAX_NODES: usize = 256;

/// The audience a push or count request selects, from its `Condition` or `Audience` field (all
/// accounts when neither is given).
///
/// An empty list or object counts as absent, like null, everywhere in `Condition`: `TagsOr: []`
/// never conflicts with `AttrsAnd: {...}` (nor `AttrsAnd: {}` with `TagsOr: [...]`), and a
/// `Condition` with nothing but empty members is no condition. Members of the wrong type are
/// refused (90001) even when empty.
pub async fn audience_of(
    ctx: &Ctx<'_>,
    body: &Map<String, Value>,
) -> Result<(TaskKind, Expr), ApiError> {
    let condition = match present(body, "Condition") {
        Some(condition) => Some(Condition::parse(ctx, condition)?),
        None => None,
    };
    let condition = condition.filter(|c| !c.is_empty());
    let extension = present(body, "Audience");
    match (condition, extension) {
        (Some(_), Some(_)) => Err(ApiError::new(
            Code::TagsWithAttrs,
            "Condition and Audience cannot be used together",
        )),
        (Some(condition), None) => condition.audience(ctx).await,
        (None, Some(expr)) => {
            let schema = schema(ctx).await?;
            let mut nodes = 0;
            let expr = parse_expr(ctx, &schema, expr, "Audience", 0, &mut nodes)?;
            Ok((TaskKind::Expression, expr))
        }
        (None, None) => Ok((TaskKind::All, Expr::All)),
    }
}

/// `tagcast/audience_count`: how many accounts a `Condition` or `Audience` selects, pushing nothing.
pub async fn audience_count(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let body = parse_object(ctx, body)?;
    let (_, expr) = audience_of(ctx, &body).await?;
    let count = ctx
        .store
        .with_audience(ctx.app.sdkappid, |index| index.count(&expr));
    reply(serde_json::json!({ "Count": count }))
}

/// Whom an audience reaches right now.
pub struct Reach {
    /// The accounts it selects: `audience_count`'s `Count`.
    pub count: u64,
    /// Those with a session on this node.
    pub online: u64,
    /// Those among `owners`, the accounts with devices.
    pub with_devices: u64,
}

/// The reach of the `Condition` or `Audience` of `body`, checked as `audience_count` checks it.
pub async fn reach(ctx: &Ctx<'_>, body: &[u8], owners: &RoaringBitmap) -> Result<Reach, ApiError> {
    let body = parse_object(ctx, body)?;
    let (_, expr) = audience_of(ctx, &body).await?;
    let app = ctx.app.sdkappid;
    let selected = ctx.store.with_audience(app, |index| index.evaluate(&expr));
    Ok(Reach {
        count: selected.len(),
        online: ctx.hub.online_among(app, &selected),
        with_devices: selected.intersection_len(owners),
    })
}

/// The body as a JSON object (90001 otherwise).
pub fn parse_object(ctx: &Ctx<'_>, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    ctx.parse(body)
}

/// A field that is present and not null.
pub fn present<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

async fn schema(ctx: &Ctx<'_>) -> Result<AttrSchema, ApiError> {
    ctx.store
        .attr_schema(ctx.app.sdkappid)
        .await
        .map_err(|e| ctx.internal(e))
}

/// Tencent's flat `Condition`, its members checked for type and tag rules.
struct Condition {
    tags_and: Vec<String>,
    tags_or: Vec<String>,
    tags_not: Vec<String>,
    attrs_and: Map<String, Value>,
    attrs_or: Map<String, Value>,
}

impl Condition {
    fn parse(ctx: &Ctx<'_>, condition: &Value) -> Result<Self, ApiError> {
        let Value::Object(condition) = condition else {
            return Err(malformed("Condition", "an object", condition));
        };
        let tags_and = tag_list(ctx, condition, "TagsAnd")?;
        let tags_or = tag_list(ctx, condition, "TagsOr")?;
        let tags_not = tag_list(ctx, condition, "TagsNot")?;
        if let Some(tag) = tags_and.iter().find(|t| tags_or.contains(t)) {
            return Err(ApiError::new(
                Code::TagInAndAndOr,
                format!("tag '{}' is in both TagsAnd and TagsOr", shown(tag)),
            ));
        }
        Ok(Self {
            tags_and,
            tags_or,
            tags_not,
            attrs_and: attr_object(condition, "AttrsAnd")?,
            attrs_or: attr_object(condition, "AttrsOr")?,
        })
    }

    fn has_tags(&self) -> bool {
        !(self.tags_and.is_empty() && self.tags_or.is_empty() && self.tags_not.is_empty())
    }

    fn has_attrs(&self) -> bool {
        !(self.attrs_and.is_empty() && self.attrs_or.is_empty())
    }

    fn is_empty(&self) -> bool {
        !self.has_tags() && !self.has_attrs()
    }

    /// The selected audience; tags and attributes together are 90039.
    async fn audience(self, ctx: &Ctx<'_>) -> Result<(TaskKind, Expr), ApiError> {
        let (has_tags, has_attrs) = (self.has_tags(), self.has_attrs());
        if has_tags && has_attrs {
            return Err(ApiError::from(Code::TagsWithAttrs));
        }
        let schema = if has_attrs {
            schema(ctx).await?
        } else {
            AttrSchema::default()
        };
        let attrs_and = attr_pairs(&schema, self.attrs_and, "AttrsAnd")?;
        let attrs_or = attr_pairs(&schema, self.attrs_or, "AttrsOr")?;
        let kind = match (has_tags, has_attrs) {
            (true, _) => TaskKind::Tag,
            (_, true) => TaskKind::Attr,
            _ => TaskKind::All,
        };
        let expr = Expr::from_condition(
            &self.tags_and,
            &self.tags_or,
            &self.tags_not,
            &attrs_and,
            &attrs_or,
        );
        Ok((kind, expr))
    }
}

fn tag_list(
    ctx: &Ctx<'_>,
    condition: &Map<String, Value>,
    field: &str,
) -> Result<Vec<String>, ApiError> {
    let Some(value) = present(condition, field) else {
        return Ok(Vec::new());
    };
    let path = format!("Condition.{field}");
    let tags: Vec<String> = serde_json::from_value(value.clone())
        .map_err(|_| malformed(&path, "an array of strings", value))?;
    check_tags(ctx, &tags, ctx.app.limits.condition_tags)
        .map_err(|e| ApiError::new(e.code, format!("{path}: {}", e.info)))?;
    Ok(tags)
}

/// An attribute member as an object (empty when absent or null).
fn attr_object(
    condition: &Map<String, Value>,
    field: &str,
) -> Result<Map<String, Value>, ApiError> {
    match present(condition, field) {
        None => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(other) => Err(malformed(
            &format!("Condition.{field}"),
            "an object of attribute names to values",
            other,
        )),
    }
}

fn attr_pairs(
    schema: &AttrSchema,
    attrs: Map<String, Value>,
    field: &str,
) -> Result<Vec<(u8, String)>, ApiError> {
    let path = format!("Condition.{field}");
    attrs
        .into_iter()
        .map(|(name, value)| {
            let slot = slot_of(schema, &name, &path)?;
            match value {
                Value::String(value) => Ok((slot, value)),
                other => Err(malformed(&format!("{path}.{name}"), "a string", &other)),
            }
        })
        .collect()
}

fn slot_of(schema: &AttrSchema, name: &str, path: &str) -> Result<u8, ApiError> {
    schema.slot_of(name).ok_or_else(|| {
        ApiError::new(
            Code::InvalidAttribute,
            format!(
                "{path}: attribute '{}' is not defined for this app",
                shown(name)
            ),
        )
    })
}

/// Parses one node of the `Audience` extension (see docs/extensions.md).
fn parse_expr(
    ctx: &Ctx<'_>,
    schema: &AttrSchema,
    value: &Value,
    path: &str,
    depth: usize,
    nodes: &mut usize,
) -> Result<Expr, ApiError> {
    *nodes += 1;
    if depth > MAX_DEPTH || *nodes > MAX_NODES {
        return Err(ApiError::new(
            Code::JsonParse,
            format!("{path}: expression deeper than {MAX_DEPTH} or larger than {MAX_NODES} nodes"),
        ));
    }
    let Value::Object(node) = value else {
        return Err(malformed(path, "an expression object", value));
    };
    let mut children = |key: &str, items: &Value| -> Result<Vec<Expr>, ApiError> {
        let Value::Array(items) = items else {
            return Err(malformed(&format!("{path}.{key}"), "an array", items));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                parse_expr(
                    ctx,
                    schema,
                    item,
                    &format!("{path}.{key}[{i}]"),
                    depth + 1,
                    nodes,
                )
            })
            .collect()
    };
    if let Some(items) = node.get("And") {
        return Ok(Expr::And(children("And", items)?));
    }
    if let Some(items) = node.get("Or") {
        return Ok(Expr::Or(children("Or", items)?));
    }
    if let Some(inner) = node.get("Not") {
        let inner = parse_expr(ctx, schema, inner, &format!("{path}.Not"), depth + 1, nodes)?;
        return Ok(Expr::Not(Box::new(inner)));
    }
    if let Some(tag) = node.get("Tag") {
        return parse_tag(ctx, tag, path);
    }
    if let Some(name) = node.get("Attr") {
        return parse_attr(schema, node, name, path);
    }
    if node.get("All") == Some(&Value::Bool(true)) {
        return Ok(Expr::All);
    }
    Err(ApiError::new(
        Code::JsonParse,
        format!("{path}: expected one of And, Or, Not, Tag, Attr, All"),
    ))
}

fn parse_tag(ctx: &Ctx<'_>, tag: &Value, path: &str) -> Result<Expr, ApiError> {
    let Value::String(tag) = tag else {
        return Err(malformed(&format!("{path}.Tag"), "a string", tag));
    };
    let tags = [tag.clone()];
    check_tags(ctx, &tags, 1)
        .map_err(|e| ApiError::new(e.code, format!("{path}.Tag: {}", e.info)))?;
    Ok(Expr::Tag(tag.clone()))
}

fn parse_attr(
    schema: &AttrSchema,
    node: &Map<String, Value>,
    name: &Value,
    path: &str,
) -> Result<Expr, ApiError> {
    let Value::String(name) = name else {
        return Err(malformed(&format!("{path}.Attr"), "a string", name));
    };
    let slot = slot_of(schema, name, path)?;
    if let Some(value) = node.get("Eq") {
        let Value::String(value) = value else {
            return Err(malformed(&format!("{path}.Eq"), "a string", value));
        };
        return Ok(Expr::AttrEq {
            slot,
            value: value.clone(),
        });
    }
    if node.get("Exists") == Some(&Value::Bool(true)) {
        return Ok(Expr::AttrExists { slot });
    }
    for (op, cmp) in [
        ("Lt", Cmp::Lt as fn(f64) -> Cmp),
        ("Le", Cmp::Le),
        ("Gt", Cmp::Gt),
        ("Ge", Cmp::Ge),
    ] {
        if let Some(bound) = node.get(op) {
            let bound = bound
                .as_f64()
                .ok_or_else(|| malformed(&format!("{path}.{op}"), "a number", bound))?;
            return Ok(Expr::AttrCmp {
                slot,
                cmp: cmp(bound),
            });
        }
    }
    Err(ApiError::new(
        Code::JsonParse,
        format!("{path}: an Attr needs one of Eq, Exists, Lt, Le, Gt, Ge"),
    ))
}

fn malformed(path: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::new(
        Code::JsonParse,
        format!(
            "invalid request body at {path}: expected {expected}, got {}",
            kind(got)
        ),
    )
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
