//! The shop's catalog: what can be ordered and at what price.
//!
//! A [`Catalog`] can only be built through [`Catalog::new`] (or the demo and
//! the file loader, which call it), so one that exists has been checked:
//! unique skus, one currency for every product (an order's total is one sum
//! of money), prices above zero, and download file names that cannot leave
//! the downloads directory. Each refusal names the product.
//!
//! A product with `subscription` terms is sold as a subscription: its price
//! is charged every period by the gateway. It is ordered alone, one at a
//! time, since one checkout starts one subscription at one price.

use std::path::Path;

use ipn_core::billing::Plan;
use ipn_core::money::{Currency, Money};
use ipn_core::payment::ItemKind;
use serde::{Deserialize, Serialize};

/// The longest sku: the gateway's (PayPal's) `item_number` limit.
const MAX_SKU: usize = 127;
/// The longest product name: PayPal's `item_name` limit.
const MAX_NAME: usize = 127;

/// One product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub kind: ItemKind,
    /// Price of one unit, in minor units.
    pub price: Money,
    #[serde(default)]
    pub description: String,
    /// For a digital product: the file, in the downloads directory, that a
    /// paid order may download. A plain file name, never a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<String>,
    /// Billing terms, for a product sold as a subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<Plan>,
}

/// A checked list of products in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    products: Vec<Product>,
    currency: Currency,
}

/// The catalog file's shape: `{"products": [ … ]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    products: Vec<Product>,
}

/// Why a catalog was refused; each names the product at fault.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the catalog has no products")]
    Empty,
    #[error("product {index}: sku {sku:?} must be 1 to {MAX_SKU} characters without spaces")]
    BadSku { index: usize, sku: String },
    #[error("product {sku:?}: the sku is used by an earlier product too")]
    DuplicateSku { sku: String },
    #[error("product {sku:?}: name must be 1 to {MAX_NAME} characters")]
    BadName { sku: String },
    #[error("product {sku:?}: price must be more than zero, not {price}")]
    NotPositive { sku: String, price: Money },
    #[error(
        "product {sku:?}: price is in {found}, but the catalog is in {expected} \
         (one currency for the whole catalog)"
    )]
    MixedCurrency {
        sku: String,
        found: Currency,
        expected: Currency,
    },
    #[error("product {sku:?}: only a digital product has a download")]
    DownloadOnPhysical { sku: String },
    #[error("product {sku:?}: a subscription has no download (access follows the subscription)")]
    DownloadOnSubscription { sku: String },
    #[error("product {sku:?}: download {file:?} must be a plain file name, not a path")]
    BadDownload { sku: String, file: String },
    #[error("catalog file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("catalog file {path}: {error}")]
    Json {
        path: String,
        error: serde_json::Error,
    },
}

impl Catalog {
    /// Checks `products` (see the module's rules) into a catalog.
    pub fn new(products: Vec<Product>) -> Result<Self, CatalogError> {
        let first = products.first().ok_or(CatalogError::Empty)?;
        let currency = first.price.currency();
        let mut seen = std::collections::HashSet::new();
        for (index, product) in products.iter().enumerate() {
            let sku = &product.sku;
            let sku_ok = !sku.is_empty()
                && sku.chars().count() <= MAX_SKU
                && !sku.chars().any(|c| c.is_whitespace() || c.is_control());
            if !sku_ok {
                return Err(CatalogError::BadSku {
                    index: index + 1,
                    sku: sku.clone(),
                });
            }
            if !seen.insert(sku.as_str()) {
                return Err(CatalogError::DuplicateSku { sku: sku.clone() });
            }
            let name = product.name.trim();
            if name.is_empty() || product.name.chars().count() > MAX_NAME {
                return Err(CatalogError::BadName { sku: sku.clone() });
            }
            if !product.price.is_positive() {
                return Err(CatalogError::NotPositive {
                    sku: sku.clone(),
                    price: product.price,
                });
            }
            if product.price.currency() != currency {
                return Err(CatalogError::MixedCurrency {
                    sku: sku.clone(),
                    found: product.price.currency(),
                    expected: currency,
                });
            }
            if let Some(file) = &product.download {
                if product.subscription.is_some() {
                    return Err(CatalogError::DownloadOnSubscription { sku: sku.clone() });
                }
                if product.kind != ItemKind::Digital {
                    return Err(CatalogError::DownloadOnPhysical { sku: sku.clone() });
                }
                if !is_plain_file_name(file) {
                    return Err(CatalogError::BadDownload {
                        sku: sku.clone(),
                        file: file.clone(),
                    });
                }
            }
        }
        Ok(Self { products, currency })
    }

    /// Reads and checks a catalog file: `{"products": [{"sku", "name",
    /// "kind", "price": {"amount", "currency"}, "description", "download"}]}`.
    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let shown = || path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| CatalogError::Read {
            path: shown(),
            error,
        })?;
        let file: CatalogFile =
            serde_json::from_slice(&bytes).map_err(|error| CatalogError::Json {
                path: shown(),
                error,
            })?;
        Self::new(file.products)
    }

    /// The built-in catalog in USD: physical goods, a digital download and
    /// a monthly subscription.
    pub fn demo() -> Self {
        let product = |sku: &str, name: &str, kind, cents, description: &str, download| Product {
            sku: sku.to_owned(),
            name: name.to_owned(),
            kind,
            price: Money::new(cents, Currency::USD),
            description: description.to_owned(),
            download,
            subscription: None,
        };
        let monthly = Plan::new(ipn_core::subscription::Interval::Month, 1, 0, None)
            .unwrap_or_else(|error| panic!("the demo plan is invalid: {error}"));
        let products = vec![
            product(
                "mug",
                "Enamel mug",
                ItemKind::Physical,
                1250,
                "A white enamel camping mug, 350 ml.",
                None,
            ),
            product(
                "tshirt",
                "IPN T-shirt",
                ItemKind::Physical,
                2000,
                "Cotton, printed with an IPN message.",
                None,
            ),
            product(
                "ebook",
                "Webhooks, exactly once (e-book)",
                ItemKind::Digital,
                999,
                "A PDF on receiving notifications without losing or repeating one.",
                Some("webhooks-exactly-once.pdf".to_owned()),
            ),
            Product {
                subscription: Some(monthly),
                ..product(
                    "membership",
                    "Webhook Weekly membership",
                    ItemKind::Digital,
                    499,
                    "A monthly letter on delivering and receiving webhooks. Cancel any time.",
                    None,
                )
            },
        ];
        // The demo is fixed; a mistake in it is a bug caught by the tests.
        Self::new(products).unwrap_or_else(|error| panic!("the demo catalog is invalid: {error}"))
    }

    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// The one currency every price is in.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn product(&self, sku: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.sku == sku)
    }
}

fn is_plain_file_name(file: &str) -> bool {
    !file.is_empty()
        && file != "."
        && file != ".."
        && !file.contains(['/', '\\'])
        && !file.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(sku: &str, cents: i64, currency: Currency) -> Product {
        Product {
            sku: sku.into(),
            name: format!("Product {sku}"),
            kind: ItemKind::Physical,
            price: Money::new(cents, currency),
            description: String::new(),
            download: None,
            subscription: None,
        }
    }

    #[test]
    fn the_demo_is_valid_and_has_a_digital_product() {
        let demo = Catalog::demo();
        assert_eq!(demo.currency(), Currency::USD);
        assert!(demo.products().iter().any(|p| p.download.is_some()));
        assert!(demo.products().iter().any(|p| p.subscription.is_some()));
        assert!(demo.products().iter().any(|p| p.kind == ItemKind::Physical));
    }

    #[test]
    fn each_refusal_names_the_product() {
        let usd = Currency::USD;
        let digital = |file: &str| Product {
            kind: ItemKind::Digital,
            download: Some(file.into()),
            ..product("book", 100, usd)
        };
        let subscription_with_file = Product {
            subscription: Some(
                Plan::new(ipn_core::subscription::Interval::Month, 1, 0, None).unwrap(),
            ),
            ..digital("letter.pdf")
        };
        let physical_with_file = Product {
            download: Some("a.pdf".into()),
            ..product("mug", 100, usd)
        };
        let cases: Vec<(Vec<Product>, &str)> = vec![
            (vec![], "no products"),
            (vec![product("a b", 1, usd)], "\"a b\""),
            (vec![product("a", 1, usd), product("a", 2, usd)], "\"a\""),
            (vec![product("a", 0, usd)], "\"a\""),
            (
                vec![product("a", 1, usd), product("b", 1, Currency::EUR)],
                "\"b\"",
            ),
            (vec![physical_with_file], "\"mug\""),
            (vec![subscription_with_file], "subscription has no download"),
            (vec![digital("../etc/passwd")], "\"book\""),
            (vec![digital("..")], "\"book\""),
        ];
        for (products, named) in cases {
            let error = Catalog::new(products.clone()).unwrap_err().to_string();
            assert!(error.contains(named), "{products:?}: {error}");
        }
        assert!(Catalog::new(vec![digital("book.pdf")]).is_ok());
    }

    #[test]
    fn a_file_is_read_and_its_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.json");
        std::fs::write(
            &path,
            r#"{"products": [{"sku": "kit", "name": "Kit", "kind": "digital",
                "price": {"amount": 1500, "currency": "EUR"}, "download": "kit.zip"}]}"#,
        )
        .unwrap();
        let catalog = Catalog::load(&path).unwrap();
        assert_eq!(catalog.currency(), Currency::EUR);
        assert_eq!(catalog.product("kit").unwrap().price.minor(), 1500);

        std::fs::write(
            &path,
            r#"{"products": [{"sku": "club", "name": "Club", "kind": "digital",
                "price": {"amount": 500, "currency": "EUR"},
                "subscription": {"interval": "year", "trial_days": 30}}]}"#,
        )
        .unwrap();
        let club = Catalog::load(&path)
            .unwrap()
            .product("club")
            .unwrap()
            .clone();
        assert_eq!(club.subscription.unwrap().trial_days(), 30);
        std::fs::write(
            &path,
            r#"{"products": [{"sku": "club", "name": "Club", "kind": "digital",
                "price": {"amount": 500, "currency": "EUR"},
                "subscription": {"interval": "year", "interval_count": 9}}]}"#,
        )
        .unwrap();
        let error = Catalog::load(&path).unwrap_err().to_string();
        assert!(error.contains("interval_count 9"), "{error}");

        std::fs::write(&path, r#"{"products": [{"sku": "kit"}]}"#).unwrap();
        let error = Catalog::load(&path).unwrap_err().to_string();
        assert!(error.contains("catalog.json"), "{error}");
        let missing = Catalog::load(&dir.path().join("nope.json")).unwrap_err();
        assert!(missing.to_string().contains("nope.json"), "{missing}");
    }
}
