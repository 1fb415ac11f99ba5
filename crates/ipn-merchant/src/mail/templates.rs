//! The emails' words: one text and one HTML file per [`EmailKind`] under
//! `templates/mail/`, plus `layout.html`, the frame every HTML email shares.
//!
//! A `.txt` file starts with a `Subject: …` line, then a blank line, then
//! the text body. Placeholders are `{{name}}`; the names a kind may use are
//! [`EmailKind::vars`]. HTML escapes every value; text and the subject do
//! not (a subject's line breaks become spaces). `layout.html` has three
//! placeholders of its own: `{{subject}}`, `{{shop_name}}` and
//! `{{content}}`, the rendered HTML body.
//!
//! Everything that can be wrong with a template (an unknown placeholder, an
//! unclosed `{{`, a missing subject) is found by [`Templates::check`], which
//! [`Templates::load`] runs at start and a unit test runs on the built-in
//! set, so a typo never waits for the first customer to surface.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ipn_web::escape;

use crate::model::{EmailKind, Rendered};

/// The layout's own placeholders.
const LAYOUT_VARS: &[&str] = &["subject", "shop_name", "content"];
const LAYOUT_FILE: &str = "layout.html";

/// One template text: built in, or read from an override folder.
type Source = Cow<'static, str>;

macro_rules! builtin {
    ($($kind:ident => $name:literal),* $(,)?) => {
        &[$((
            EmailKind::$kind,
            include_str!(concat!("../../templates/mail/", $name, ".txt")),
            include_str!(concat!("../../templates/mail/", $name, ".html")),
        )),*]
    };
}

/// The built-in templates, one entry per kind (a test checks none is
/// missing): kind, text, HTML.
const BUILTIN: &[(EmailKind, &str, &str)] = builtin![
    OrderPaid => "order_paid",
    PaymentPending => "payment_pending",
    PaymentFailed => "payment_failed",
    Refunded => "refunded",
    Reversed => "reversed",
    ReversalCanceled => "reversal_canceled",
    DownloadLink => "download_link",
    SubscriptionStarted => "subscription_started",
    SubscriptionRenewed => "subscription_renewed",
    SubscriptionPaymentFailed => "subscription_payment_failed",
    SubscriptionCanceled => "subscription_canceled",
    SubscriptionExpired => "subscription_expired",
];
const BUILTIN_LAYOUT: &str = include_str!("../../templates/mail/layout.html");

/// A template that cannot be used, or values that do not fit one. The file
/// named is relative to the templates folder.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{file}: the first line must be `Subject: …`, followed by a blank line")]
    NoSubject { file: String },
    #[error("{file}: `{{{{` at byte {at} is never closed by `}}}}`")]
    Unclosed { file: String, at: usize },
    #[error("{file}: unknown placeholder `{{{{{name}}}}}`; this email's variables are {allowed}")]
    UnknownPlaceholder {
        file: String,
        name: String,
        allowed: String,
    },
    #[error("{kind}: the variable `{name}` has no value")]
    MissingVar { kind: EmailKind, name: &'static str },
    #[error("{kind}: `{name}` is not a variable of this email; its variables are {allowed}")]
    UnknownVar {
        kind: EmailKind,
        name: String,
        allowed: String,
    },
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
}

/// The values for one email, by variable name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(BTreeMap<&'static str, String>);

impl Vars {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` (replacing an earlier value).
    pub fn set(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        self.0.insert(name, value.into());
        self
    }

    /// [`Vars::set`], by value, for chaining.
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl FromIterator<(&'static str, String)> for Vars {
    fn from_iter<I: IntoIterator<Item = (&'static str, String)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[derive(Debug, Clone)]
struct Pair {
    text: Source,
    html: Source,
}

/// The templates of every kind.
#[derive(Debug, Clone)]
pub struct Templates {
    kinds: HashMap<EmailKind, Pair>,
    layout: Source,
}

impl Templates {
    /// The templates built into the binary.
    pub fn builtin() -> Self {
        Self {
            kinds: BUILTIN
                .iter()
                .map(|&(kind, text, html)| {
                    let pair = Pair {
                        text: Cow::Borrowed(text),
                        html: Cow::Borrowed(html),
                    };
                    (kind, pair)
                })
                .collect(),
            layout: Cow::Borrowed(BUILTIN_LAYOUT),
        }
    }

    /// The built-in templates, with each file found in `dir` (same names:
    /// `order_paid.txt`, `layout.html`, …) in place of its built-in one.
    /// A `.txt` or `.html` file there that names no template is an error,
    /// so a misspelt override cannot be silently ignored. Checked before
    /// it returns.
    pub fn load(dir: &Path) -> Result<Self, TemplateError> {
        let file_error = |path: &Path, reason: String| TemplateError::File {
            path: path.to_owned(),
            reason,
        };
        let mut templates = Self::builtin();
        let entries = std::fs::read_dir(dir).map_err(|e| file_error(dir, e.to_string()))?;
        for entry in entries {
            let path = entry.map_err(|e| file_error(dir, e.to_string()))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some((stem, extension)) = name.rsplit_once('.') else {
                continue;
            };
            if !matches!(extension, "txt" | "html") {
                continue;
            }
            let read = || {
                std::fs::read_to_string(&path)
                    .map(Cow::Owned)
                    .map_err(|e| file_error(&path, e.to_string()))
            };
            if name == LAYOUT_FILE {
                templates.layout = read()?;
                continue;
            }
            let Ok(kind) = stem.parse::<EmailKind>() else {
                let known: Vec<&str> = EmailKind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(file_error(
                    &path,
                    format!(
                        "names no email template; the names are {LAYOUT_FILE} and {}, each .txt or .html",
                        known.join(", ")
                    ),
                ));
            };
            let pair = templates
                .kinds
                .get_mut(&kind)
                .expect("builtin() holds every kind");
            if extension == "txt" {
                pair.text = read()?;
            } else {
                pair.html = read()?;
            }
        }
        templates.check()?;
        Ok(templates)
    }

    /// Finds every fault the templates can have on their own: a kind
    /// without templates, a text without its subject line, an unclosed
    /// `{{`, a placeholder that is not one of its kind's variables.
    pub fn check(&self) -> Result<(), TemplateError> {
        parse(&self.layout, LAYOUT_FILE, LAYOUT_VARS)?;
        for &kind in EmailKind::ALL {
            let pair = self.pair(kind)?;
            let text_file = format!("{kind}.txt");
            let (subject, body) = split_subject(&pair.text, &text_file)?;
            parse(subject, &text_file, kind.vars())?;
            parse(body, &text_file, kind.vars())?;
            parse(&pair.html, &format!("{kind}.html"), kind.vars())?;
        }
        Ok(())
    }

    /// Renders one email. `vars` must hold exactly the kind's variables
    /// ([`EmailKind::vars`]): a missing one or an extra one is an error, so
    /// a misspelt name in the caller fails its first test.
    pub fn render(&self, kind: EmailKind, vars: &Vars) -> Result<Rendered, TemplateError> {
        let allowed = kind.vars();
        if let Some(name) = vars.0.keys().find(|name| !allowed.contains(name)) {
            return Err(TemplateError::UnknownVar {
                kind,
                name: (*name).to_owned(),
                allowed: allowed.join(", "),
            });
        }
        if let Some(&name) = allowed.iter().find(|name| vars.get(name).is_none()) {
            return Err(TemplateError::MissingVar { kind, name });
        }
        let value = |name: &str| vars.get(name).unwrap_or_default();

        let pair = self.pair(kind)?;
        let text_file = format!("{kind}.txt");
        let (subject, body) = split_subject(&pair.text, &text_file)?;
        let subject = fill(&parse(subject, &text_file, allowed)?, |name| {
            Cow::Borrowed(value(name))
        });
        // A value with a line break must not split the subject header.
        let subject = subject
            .split(['\r', '\n'])
            .filter(|line| !line.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let text = fill(&parse(body, &text_file, allowed)?, |name| {
            Cow::Borrowed(value(name))
        });
        let content = fill(
            &parse(&pair.html, &format!("{kind}.html"), allowed)?,
            |name| escape(value(name)),
        );
        let html = fill(
            &parse(&self.layout, LAYOUT_FILE, LAYOUT_VARS)?,
            |name| match name {
                "content" => Cow::Borrowed(content.as_str()),
                "subject" => escape(&subject),
                _ => escape(value(name)),
            },
        );
        Ok(Rendered {
            subject,
            text: format!("{}\n", text.trim_end()),
            html,
        })
    }

    fn pair(&self, kind: EmailKind) -> Result<&Pair, TemplateError> {
        self.kinds.get(&kind).ok_or_else(|| TemplateError::File {
            path: PathBuf::from(format!("{kind}.txt")),
            reason: "no template for this email".to_owned(),
        })
    }
}

/// A text template's subject line and its body.
fn split_subject<'a>(text: &'a str, file: &str) -> Result<(&'a str, &'a str), TemplateError> {
    let no_subject = || TemplateError::NoSubject {
        file: file.to_owned(),
    };
    let (first, rest) = text.split_once('\n').ok_or_else(no_subject)?;
    let subject = first
        .trim_end_matches('\r')
        .strip_prefix("Subject:")
        .map(str::trim)
        .filter(|subject| !subject.is_empty())
        .ok_or_else(no_subject)?;
    let body = rest
        .strip_prefix("\r\n")
        .or_else(|| rest.strip_prefix('\n'))
        .ok_or_else(no_subject)?;
    Ok((subject, body))
}

#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// Splits a template into text and placeholders, each of which must be one
/// of `allowed`.
fn parse<'a>(
    template: &'a str,
    file: &str,
    allowed: &[&str],
) -> Result<Vec<Piece<'a>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            pieces.push(Piece::Text(&rest[..start]));
        }
        let inner = &rest[start + 2..];
        let end = inner.find("}}").ok_or(TemplateError::Unclosed {
            file: file.to_owned(),
            at: offset + start,
        })?;
        let name = inner[..end].trim();
        if !allowed.contains(&name) {
            return Err(TemplateError::UnknownPlaceholder {
                file: file.to_owned(),
                name: name.to_owned(),
                allowed: allowed.join(", "),
            });
        }
        pieces.push(Piece::Var(name));
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

fn fill<'v>(pieces: &[Piece<'_>], mut value: impl FnMut(&str) -> Cow<'v, str>) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Var(name) => out.push_str(&value(name)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plausible values for every variable any kind has.
    pub(crate) fn sample_vars(kind: EmailKind) -> Vars {
        kind.vars()
            .iter()
            .map(|&name| {
                let value = match name {
                    "shop_name" => "ipn demo shop",
                    "customer_email" => "ada@example.com",
                    "order_id" => "ord_01JDX3Q6Z8M4N9P2R5T7V0W1XY",
                    "order_url" => "http://127.0.0.1:7701/orders/ord_01JDX3Q6Z8M4N9P2R5T7V0W1XY",
                    "total" => "USD 29.99",
                    "amount" => "USD 9.99",
                    "items" => "1 × Poster: USD 19.99\n1 × E-book: USD 10.00",
                    "reason" => "the bank transfer has not cleared yet",
                    "product_name" => "E-book",
                    "download_url" => "http://127.0.0.1:7701/downloads/dl_abc",
                    "download_expires" => "2026-12-02 18:00 UTC",
                    "downloads_left" => "5",
                    "subscription_id" => "sub_01JDX3Q6Z8M4N9P2R5T7V0W1XY",
                    "paid_through" => "2026-12-25",
                    other => panic!("no sample value for `{other}`"),
                };
                (name, value.to_owned())
            })
            .collect()
    }

    #[test]
    fn every_kind_renders_with_its_documented_vars() {
        let templates = Templates::builtin();
        templates.check().unwrap();
        assert_eq!(BUILTIN.len(), EmailKind::ALL.len());
        for &kind in EmailKind::ALL {
            let vars = sample_vars(kind);
            let email = templates
                .render(kind, &vars)
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert!(!email.subject.is_empty(), "{kind}");
            assert!(!email.subject.contains("{{"), "{kind}: {}", email.subject);
            assert!(!email.text.contains("{{"), "{kind}: {}", email.text);
            assert!(!email.html.contains("{{"), "{kind}: {}", email.html);
            assert!(email.html.starts_with("<!DOCTYPE html>"), "{kind}");
            // Each template shows the customer what the email is about.
            let key = ["order_id", "subscription_id"]
                .into_iter()
                .find_map(|name| vars.get(name))
                .unwrap();
            assert!(email.text.contains(key), "{kind}: text lacks {key}");
            assert!(email.html.contains(key), "{kind}: html lacks {key}");
            assert!(email.html.contains("ipn demo shop"), "{kind}");
        }
    }

    #[test]
    fn html_escapes_every_value_and_text_keeps_it() {
        let templates = Templates::builtin();
        let vars =
            sample_vars(EmailKind::OrderPaid).with("items", "1 × <script>alert(1)</script> & co");
        let email = templates.render(EmailKind::OrderPaid, &vars).unwrap();
        assert!(!email.html.contains("<script>"), "{}", email.html);
        assert!(
            email
                .html
                .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"),
            "{}",
            email.html
        );
        assert!(email.text.contains("<script>alert(1)</script> & co"));

        let vars = sample_vars(EmailKind::OrderPaid).with("shop_name", "A \"quoted\" <shop>");
        let email = templates.render(EmailKind::OrderPaid, &vars).unwrap();
        assert!(email.html.contains("A &quot;quoted&quot; &lt;shop&gt;"));
        assert!(!email.html.contains("<shop>"));
    }

    #[test]
    fn a_missing_or_unknown_var_is_an_error() {
        let templates = Templates::builtin();
        let mut vars = sample_vars(EmailKind::Refunded);
        vars.0.remove("amount");
        let error = templates.render(EmailKind::Refunded, &vars).unwrap_err();
        assert!(
            matches!(error, TemplateError::MissingVar { name: "amount", .. }),
            "{error}"
        );

        let vars = sample_vars(EmailKind::Refunded).with("ammount", "USD 1.00");
        let error = templates.render(EmailKind::Refunded, &vars).unwrap_err();
        assert!(
            matches!(&error, TemplateError::UnknownVar { name, .. } if name == "ammount"),
            "{error}"
        );
    }

    #[test]
    fn a_line_break_in_a_value_cannot_split_the_subject() {
        let templates = Templates::builtin();
        let vars = sample_vars(EmailKind::OrderPaid).with("order_id", "ord_1\r\nBcc: x@evil");
        let email = templates.render(EmailKind::OrderPaid, &vars).unwrap();
        assert!(!email.subject.contains(['\r', '\n']), "{}", email.subject);
    }

    #[test]
    fn parse_finds_placeholders_and_rejects_typos_and_unclosed_braces() {
        assert_eq!(
            parse(
                "Hi {{ shop_name }}, {{order_id}}!",
                "t",
                &["shop_name", "order_id"]
            )
            .unwrap(),
            [
                Piece::Text("Hi "),
                Piece::Var("shop_name"),
                Piece::Text(", "),
                Piece::Var("order_id"),
                Piece::Text("!"),
            ]
        );
        assert!(matches!(
            parse("Hi {{shop_nam}}", "t", &["shop_name"]),
            Err(TemplateError::UnknownPlaceholder { name, .. }) if name == "shop_nam"
        ));
        assert!(matches!(
            parse("Hi {{shop_name", "t", &["shop_name"]),
            Err(TemplateError::Unclosed { at: 3, .. })
        ));
        assert!(matches!(
            split_subject("Hello\n\nbody", "x.txt"),
            Err(TemplateError::NoSubject { .. })
        ));
        assert_eq!(
            split_subject("Subject: Hi\r\n\r\nbody", "x.txt").unwrap(),
            ("Hi", "body")
        );
    }

    #[test]
    fn load_overrides_per_file_and_checks_at_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("refunded.txt"),
            "Subject: Money back: {{amount}}\n\nRefund of {{amount}} for {{order_id}}.\n",
        )
        .unwrap();
        let templates = Templates::load(dir.path()).unwrap();
        let email = templates
            .render(EmailKind::Refunded, &sample_vars(EmailKind::Refunded))
            .unwrap();
        assert_eq!(email.subject, "Money back: USD 9.99");
        assert_eq!(
            email.text,
            "Refund of USD 9.99 for ord_01JDX3Q6Z8M4N9P2R5T7V0W1XY.\n"
        );
        // The HTML of the same kind is still the built-in one.
        assert!(email.html.contains("USD 9.99"));

        std::fs::write(dir.path().join("refunded.html"), "<p>{{download_url}}</p>").unwrap();
        let error = Templates::load(dir.path()).unwrap_err();
        assert!(
            matches!(&error, TemplateError::UnknownPlaceholder { file, .. } if file == "refunded.html"),
            "{error}"
        );
        std::fs::remove_file(dir.path().join("refunded.html")).unwrap();

        std::fs::write(dir.path().join("order_payed.txt"), "Subject: x\n\ny").unwrap();
        let error = Templates::load(dir.path()).unwrap_err();
        assert!(matches!(error, TemplateError::File { .. }), "{error}");
    }
}
