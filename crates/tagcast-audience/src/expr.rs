//! Targeting expressions: Tencent's flat `Condition` and tagcast's nested extension both compile
//! to an `Expr`.

/// A numeric comparison on an attribute value (values that are not numbers never match).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Lt(f64),
    Le(f64),
    Gt(f64),
    Ge(f64),
}

impl Cmp {
    pub fn matches(&self, value: f64) -> bool {
        match *self {
            Cmp::Lt(x) => value < x,
            Cmp::Le(x) => value <= x,
            Cmp::Gt(x) => value > x,
            Cmp::Ge(x) => value >= x,
        }
    }
}

/// Who a push reaches. Attributes are referred to by slot (`0..10`).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every account of the app.
    All,
    /// Accounts having the tag.
    Tag(String),
    /// Accounts whose attribute in `slot` equals `value`.
    AttrEq { slot: u8, value: String },
    /// Accounts that have any value in `slot`.
    AttrExists { slot: u8 },
    /// Accounts whose attribute in `slot` is a number satisfying `cmp`.
    AttrCmp { slot: u8, cmp: Cmp },
    /// Accounts matching every member (`All` when empty).
    And(Vec<Expr>),
    /// Accounts matching any member (nobody when empty).
    Or(Vec<Expr>),
    /// Accounts not matching.
    Not(Box<Expr>),
}

impl Expr {
    /// Tencent's `Condition`: `TagsAnd` and `TagsOr` groups both required, `TagsNot` excludes
    /// anyone having any listed tag; `AttrsAnd` / `AttrsOr` likewise. Empty lists are ignored.
    pub fn from_condition(
        tags_and: &[String],
        tags_or: &[String],
        tags_not: &[String],
        attrs_and: &[(u8, String)],
        attrs_or: &[(u8, String)],
    ) -> Expr {
        let tag = |t: &String| Expr::Tag(t.clone());
        let attr = |(slot, value): &(u8, String)| Expr::AttrEq {
            slot: *slot,
            value: value.clone(),
        };
        let mut parts = Vec::new();
        parts.extend(tags_and.iter().map(tag));
        if !tags_or.is_empty() {
            parts.push(Expr::Or(tags_or.iter().map(tag).collect()));
        }
        if !tags_not.is_empty() {
            parts.push(Expr::Not(Box::new(Expr::Or(
                tags_not.iter().map(tag).collect(),
            ))));
        }
        parts.extend(attrs_and.iter().map(attr));
        if !attrs_or.is_empty() {
            parts.push(Expr::Or(attrs_or.iter().map(attr).collect()));
        }
        Expr::And(parts)
    }
}
