//! The context of validating one site ([`Cx`]): where diagnostics go, the
//! defaults recorded for `explain` (in TOML notation, [`TomlText`]), and
//! the readers every area shares: sizes, cores, integers, flags, ports,
//! text, CIDRs, images and name-like settings.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use toml::Spanned;

use crate::base::codes::Code;
use crate::base::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::base::names::{is_bidi_control, is_digest, is_image_repository, is_image_tag};
use crate::base::source::Span;
use crate::base::units::{Bytes, Millicores, TimeSpan, cores_to_millicores, parse_bytes};
use crate::input::layer::{self, ImageLayer, Target};
use crate::model::*;

/// What validating one site carries from area to area.
pub(super) struct Cx<'d> {
    pub(super) diags: &'d mut Diagnostics,
    /// The defaults filled in so far, in order: what `explain` lists.
    pub(super) defaults: Vec<Shared<(String, String)>>,
    /// Where to point when something is missing altogether: the site's
    /// `profile = ...` line.
    pub(super) anchor: Span,
    pub(super) target: Target,
    /// The dotted paths of entries removed for a mistake (reported where
    /// they were read): what they may have meant is not called missing.
    pub(super) removed: Vec<String>,
    /// Secrets refused where they were given (a literal, a bad
    /// reference): not also missing.
    pub(super) refused_secrets: Vec<String>,
}

impl Cx<'_> {
    pub(super) fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    pub(super) fn default<T: TomlText>(&mut self, key: &str, value: T) -> T {
        self.defaults
            .push(Shared::new((key.to_string(), value.toml_text())));
        value
    }

    /// The value, when `problem` finds nothing wrong with it; else an
    /// `invalid-value` error, "`value` is not {what}: why", at it (`more`
    /// adds the label and help), and `None`.
    pub(super) fn checked(
        &mut self,
        v: &Spanned<String>,
        problem: fn(&str) -> Option<String>,
        what: &str,
        more: impl FnOnce(Diagnostic) -> Diagnostic,
    ) -> Option<String> {
        let Some(why) = problem(v.get_ref()) else {
            return Some(v.get_ref().clone());
        };
        let d = Diagnostic::error(
            Code::InvalidValue,
            format!("`{}` is not {what}: {why}", v.get_ref().escape_debug()),
        )
        .at(v.span());
        self.err(more(d));
        None
    }

    /// Whether `key` (dotted, array items as `[i]`) may be what an entry
    /// removed for a reported mistake meant: that entry itself or a table
    /// above it, a sibling in the same table (`memroy` for `memory`), or a
    /// table of a similar name on the way to it (`[netwrk]` for
    /// `network.lan`).
    pub(super) fn was_removed(&self, key: &str) -> bool {
        let key: Vec<&str> = key
            .split(['.', '[', ']'])
            .filter(|s| !s.is_empty())
            .collect();
        self.removed.iter().any(|r| {
            let r: Vec<&str> = r.split('.').collect();
            let n = r.len();
            key.len() >= n
                && key[..n - 1] == r[..n - 1]
                && (key.len() == n
                    || key[n - 1] == r[n - 1]
                    || did_you_mean(r[n - 1], [key[n - 1]]).is_some())
        })
    }

    /// Report `d`, a missing `key`, unless a removed entry may have meant
    /// it ([`Cx::was_removed`]). (A site whose chain is not whole, where a
    /// missing profile may set it, keeps only its `FORM_CODES` errors.)
    pub(super) fn err_missing(&mut self, key: &str, d: Diagnostic) {
        if !self.was_removed(key) {
            self.err(d);
        }
    }

    pub(super) fn missing(&mut self, key: &str, help: &str) {
        let d = Diagnostic::error(
            Code::MissingKey,
            format!("`{key}` is not set for this site"),
        )
        .at(self.anchor.clone())
        .label("in none of the files of this site's chain")
        .help(help.to_string());
        self.err_missing(key, d);
    }

    pub(super) fn bytes(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        default: Option<Bytes>,
    ) -> Option<Bytes> {
        match v {
            Some(s) => match parse_bytes(s.get_ref()) {
                Ok(b) if b.0 == 0 => {
                    self.err(
                        Diagnostic::error(
                            Code::InvalidUnit,
                            format!("`{key}` must be more than zero"),
                        )
                        .at(s.span())
                        .help("write a size such as `512MiB`"),
                    );
                    None
                }
                Ok(b) => Some(b),
                Err(e) => {
                    self.err(
                        Diagnostic::error(Code::InvalidUnit, e.message)
                            .at(s.span())
                            .label(format!("`{key}` takes a size"))
                            .help(e.help),
                    );
                    None
                }
            },
            None => default.map(|d| self.default(key, d)),
        }
    }

    pub(super) fn cores(
        &mut self,
        v: &Option<Spanned<layer::Number>>,
        key: &str,
        default: Option<Millicores>,
    ) -> Option<Millicores> {
        match v {
            Some(n) => match cores_to_millicores(n.get_ref().as_f64()) {
                Ok(m) => Some(m),
                Err(e) => {
                    self.err(
                        Diagnostic::error(Code::InvalidValue, e.message)
                            .at(n.span())
                            .label(format!("`{key}` takes a number of cores"))
                            .help(e.help),
                    );
                    None
                }
            },
            None => default.map(|d| self.default(key, d)),
        }
    }

    pub(super) fn int(
        &mut self,
        v: &Option<Spanned<i64>>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> Option<u32> {
        match v {
            Some(n) if range.contains(n.get_ref()) => Some(*n.get_ref() as u32),
            Some(n) => {
                self.err(
                    Diagnostic::error(
                        Code::OutOfRange,
                        format!(
                            "`{key}` is {}, outside {}..={}",
                            n.get_ref(),
                            range.start(),
                            range.end()
                        ),
                    )
                    .at(n.span())
                    .help(format!(
                        "choose a value from {} to {}",
                        range.start(),
                        range.end()
                    )),
                );
                None
            }
            None => Some(self.default(key, default) as u32),
        }
    }

    pub(super) fn flag(&mut self, v: &Option<Spanned<bool>>, key: &str, default: bool) -> bool {
        match v {
            Some(b) => *b.get_ref(),
            None => self.default(key, default),
        }
    }

    pub(super) fn port(&mut self, v: &Option<Spanned<i64>>, key: &str, default: u16) -> u16 {
        match v {
            Some(p) => match u16::try_from(*p.get_ref()) {
                Ok(port) if port > 0 => port,
                _ => {
                    self.err(
                        Diagnostic::error(
                            Code::InvalidPort,
                            format!("`{}` is not a TCP port", p.get_ref()),
                        )
                        .at(p.span())
                        .label(format!("`{key}` takes a port from 1 to 65535"))
                        .help("choose a port from 1 to 65535"),
                    );
                    default
                }
            },
            None => self.default(key, default),
        }
    }

    /// A single-line free-text value: no control characters.
    pub(super) fn text(&mut self, v: &Spanned<String>, key: &str, max: usize) -> Option<String> {
        let s = v.get_ref();
        if let Some(c) = s.chars().find(|c| c.is_control() || is_bidi_control(*c)) {
            self.err(
                Diagnostic::error(Code::InvalidText, format!("`{key}` contains the control character U+{:04X}", c as u32))
                    .at(v.span())
                    .help("write the value on one line, without control or bidirectional-override characters"),
            );
            return None;
        }
        if s.len() > max {
            self.err(
                Diagnostic::error(
                    Code::InvalidText,
                    format!("`{key}` is longer than {max} bytes"),
                )
                .at(v.span())
                .help("shorten it"),
            );
            return None;
        }
        Some(s.clone())
    }

    pub(super) fn cidr(&mut self, v: &Spanned<String>, key: &str) -> Option<IpNet> {
        match IpNet::from_str(v.get_ref().trim()) {
            Ok(net) if net.trunc() == net => Some(net),
            Ok(net) => {
                self.err(
                    Diagnostic::error(
                        Code::InvalidCidr,
                        format!("`{}` has host bits set", v.get_ref()),
                    )
                    .at(v.span())
                    .label(format!("`{key}` takes a network"))
                    .help(format!("did you mean `{}`?", net.trunc())),
                );
                None
            }
            Err(_) => {
                let help = if IpAddr::from_str(v.get_ref().trim()).is_ok() {
                    format!("add a prefix length, e.g. `{}/32`", v.get_ref().trim())
                } else {
                    "write a network as ADDRESS/PREFIX, e.g. `10.20.1.0/24` or `fd00::/64`"
                        .to_string()
                };
                self.err(
                    Diagnostic::error(
                        Code::InvalidCidr,
                        format!("`{}` is not a CIDR network", v.get_ref()),
                    )
                    .at(v.span())
                    .label(format!("`{key}` takes a network"))
                    .help(help),
                );
                None
            }
        }
    }

    pub(super) fn cidrs(
        &mut self,
        v: &Option<Spanned<Vec<Spanned<String>>>>,
        key: &str,
    ) -> Option<Vec<IpNet>> {
        let v = v.as_ref()?;
        let mut out: Vec<IpNet> = v
            .get_ref()
            .iter()
            .filter_map(|c| self.cidr(c, key))
            .collect();
        out.sort();
        out.dedup();
        Some(out)
    }

    pub(super) fn image(
        &mut self,
        layer: &Option<ImageLayer>,
        key: &str,
        default: &ImageRef,
    ) -> ImageRef {
        let mut img = default.clone();
        let Some(l) = layer else { return img };
        if let Some(r) = &l.repository {
            if is_image_repository(r.get_ref()) {
                img.repository = r.get_ref().clone();
            } else {
                self.err(
                    Diagnostic::error(Code::InvalidImage, format!("`{}` is not an image repository", r.get_ref()))
                        .at(r.span())
                        .help("write a repository such as `langgenius/dify-sandbox` or `registry.example.org:5000/team/image`"),
                );
            }
        }
        if let Some(t) = &l.tag {
            let tag = t.get_ref();
            if tag == "latest" {
                self.err(
                    Diagnostic::error(Code::UnpinnedImage, format!("`{key}` uses the tag `latest`"))
                        .at(t.span())
                        .help("pin a release tag, e.g. `1.27-alpine`, so that every build runs the same image"),
                );
            } else if !is_image_tag(tag) {
                self.err(
                    Diagnostic::error(Code::InvalidImage, format!("`{tag}` is not an image tag"))
                        .at(t.span())
                        .help(
                            "tags are 1 to 128 of A-Z a-z 0-9 _ . - and do not start with . or -",
                        ),
                );
            } else {
                img.tag = tag.clone();
            }
        }
        if let Some(d) = &l.digest {
            if is_digest(d.get_ref()) {
                img.digest = Some(d.get_ref().clone());
            } else {
                self.err(
                    Diagnostic::error(
                        Code::InvalidImage,
                        format!("`{}` is not an image digest", d.get_ref()),
                    )
                    .at(d.span())
                    .help("write `sha256:` followed by 64 lower-case hex digits"),
                );
            }
        }
        img
    }
}

/// A default value as `explain` prints it: in TOML notation.
pub(super) trait TomlText {
    fn toml_text(&self) -> String;
}

impl TomlText for bool {
    fn toml_text(&self) -> String {
        self.to_string()
    }
}

macro_rules! toml_number {
    ($($t:ty),*) => {$(impl TomlText for $t {
        fn toml_text(&self) -> String {
            self.to_string()
        }
    })*};
}
toml_number!(u8, u16, u32, i64);

impl TomlText for &str {
    fn toml_text(&self) -> String {
        format!("{self:?}")
    }
}

impl TomlText for String {
    fn toml_text(&self) -> String {
        format!("{self:?}")
    }
}

impl TomlText for Bytes {
    fn toml_text(&self) -> String {
        format!("\"{}\"", self.human())
    }
}

impl TomlText for Millicores {
    fn toml_text(&self) -> String {
        self.cores()
    }
}

impl TomlText for TimeSpan {
    fn toml_text(&self) -> String {
        format!("\"{self}\"")
    }
}

impl TomlText for Vec<String> {
    fn toml_text(&self) -> String {
        format!(
            "[{}]",
            self.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// What a name-like setting must look like.
pub(super) struct NameRule {
    pub(super) valid: fn(&str) -> bool,
    /// What it is not when invalid, e.g. `a Kubernetes namespace name`.
    pub(super) what: &'static str,
    /// What it takes, for the help line.
    pub(super) takes: &'static str,
}

/// A name-like setting: its value when `rule` accepts it, else an
/// `invalid-name` error (and an empty name); its default when unset.
pub(super) fn name_value(
    cx: &mut Cx<'_>,
    v: &Option<Spanned<String>>,
    key: &str,
    default: &str,
    rule: NameRule,
) -> String {
    match v {
        Some(n) if (rule.valid)(n.get_ref()) => n.get_ref().clone(),
        Some(n) => {
            cx.err(
                Diagnostic::error(
                    Code::InvalidName,
                    format!("`{}` is not {}", n.get_ref().escape_debug(), rule.what),
                )
                .at(n.span())
                .help(format!("`{key}` takes {}", rule.takes)),
            );
            String::new()
        }
        None => cx.default(key, default.to_string()),
    }
}
