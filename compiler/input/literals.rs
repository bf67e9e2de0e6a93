//! Credentials written as values. Whatever its key, a string that looks
//! like a credential ([`credential_in`]: a private key, an access key, a
//! token, a URL with a password, ...) is refused in the file that holds
//! it: dify-cfg writes values into the site's files, and secrets are given
//! by reference only. `[secrets]` is left to validation, which refuses
//! every literal there.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::base::codes::Code;
use crate::base::credentials::{Credential, credential_in};
use crate::base::diagnostic::{Diagnostic, Diagnostics};

/// A `literal-secret` error for every value of `table` (a file's tree)
/// that looks like a credential.
pub fn refuse_credentials(table: &Spanned<DeTable<'_>>, diags: &mut Diagnostics) {
    for (k, v) in table.get_ref() {
        if k.get_ref() != "secrets" {
            node(v, &mut vec![k.get_ref().to_string()], diags);
        }
    }
}

fn node(n: &Spanned<DeValue<'_>>, path: &mut Vec<String>, diags: &mut Diagnostics) {
    match n.get_ref() {
        DeValue::String(s) => {
            if let Some(kind) = credential_in(s) {
                diags.push(refusal(kind, path).at(n.span()));
            }
        }
        DeValue::Table(t) => {
            for (k, v) in t {
                path.push(k.get_ref().to_string());
                node(v, path, diags);
                path.pop();
            }
        }
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                path.push(format!("[{i}]"));
                node(item, path, diags);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The error for a value at `path` that looks like `kind`.
fn refusal(kind: Credential, path: &[String]) -> Diagnostic {
    let dotted = path.iter().fold(String::new(), |mut s, p| {
        if !s.is_empty() && !p.starts_with('[') {
            s.push('.');
        }
        s.push_str(p);
        s
    });
    let help = match (path, kind) {
        ([env, _], Credential::UrlPassword) if env == "env" => "write the URL without `user:password@` and give the password by reference in `[secrets]`, e.g. as the setting's `_PASSWORD`".to_string(),
        ([env, name], _) if env == "env" => format!("give `{name}` by reference under `[secrets]`: `{name} = {{ env = \"{name}\" }}`"),
        _ => "remove it: dify-cfg writes this value into the site's files; secrets go under `[secrets]`, by reference".to_string(),
    };
    let what = match path {
        [env, name] if env == "env" => name.clone(),
        _ => dotted,
    };
    Diagnostic::error(
        Code::LiteralSecret,
        format!("the value of `{what}` looks like {}", kind.what()),
    )
    .label("a literal secret")
    .help(help)
}
