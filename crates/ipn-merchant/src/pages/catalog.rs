//! `/`: the catalog, one form per product; `POST /orders` reads the form.

use ipn_core::payment::ItemKind;

use ipn_web::escape;

use super::html::money;
use crate::catalog::Catalog;
use crate::shop::orders::{MAX_QUANTITY, OrderRequest, RequestLine};

/// The Buy form as the customer filled it in, kept to show it again with
/// the problem when it is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filled {
    pub sku: String,
    pub quantity: String,
    pub customer_email: String,
}

impl Filled {
    /// Reads `application/x-www-form-urlencoded`: unknown fields are
    /// ignored, missing ones are empty (the order's checks then name them).
    pub fn parse(body: &[u8]) -> Self {
        let mut form = Self::default();
        for (key, value) in url::form_urlencoded::parse(body) {
            match &*key {
                "sku" => form.sku = value.trim().to_owned(),
                "quantity" => form.quantity = value.trim().to_owned(),
                "customer_email" => form.customer_email = value.trim().to_owned(),
                _ => {}
            }
        }
        form
    }

    /// The order it asks for; the shop's own checks (`shop::orders`) then
    /// apply exactly as for `POST /api/orders`. Only what the JSON API's
    /// types would have refused is checked here.
    pub fn request(&self) -> Result<OrderRequest, String> {
        let quantity = self
            .quantity
            .parse::<i64>()
            .map_err(|_| format!("quantity must be a whole number from 1 to {MAX_QUANTITY}"))?;
        Ok(OrderRequest {
            items: vec![RequestLine {
                sku: self.sku.clone(),
                quantity,
            }],
            customer_email: self.customer_email.clone(),
        })
    }
}

/// The catalog's markup. `filled` and `problem`: a refused form, shown
/// again on its product with the problem above the products.
pub fn render(catalog: &Catalog, filled: Option<&Filled>, problem: Option<&str>) -> String {
    let mut main = String::from("<h1>Shop</h1>\n");
    if let Some(problem) = problem {
        main.push_str(&format!(
            "<p class=\"problem\" role=\"alert\" id=\"problem\">{}</p>\n",
            escape(problem)
        ));
    }
    for product in catalog.products() {
        let (quantity, email) = match filled {
            Some(form) if form.sku == product.sku => {
                (form.quantity.as_str(), form.customer_email.as_str())
            }
            Some(form) => ("1", form.customer_email.as_str()),
            None => ("1", ""),
        };
        let kind = match (product.kind, &product.subscription) {
            (_, Some(plan)) if plan.trial_days() > 0 => {
                format!(
                    "Subscription, first {} days free; cancel any time",
                    plan.trial_days()
                )
            }
            (_, Some(_)) => "Subscription; cancel any time".to_owned(),
            (ItemKind::Physical, None) => "Shipped to you".to_owned(),
            (ItemKind::Digital, None) => "Digital download, emailed once paid".to_owned(),
        };
        // A subscription is bought once: no quantity to choose.
        let (price, quantity_field, button) = match &product.subscription {
            Some(plan) => (
                format!("{} / {}", money(product.price), escape(&plan.period())),
                "<input type=\"hidden\" name=\"quantity\" value=\"1\">".to_owned(),
                "Subscribe",
            ),
            None => (
                money(product.price),
                format!(
                    "<label>Quantity <input type=\"number\" name=\"quantity\" min=\"1\" \
                     max=\"{MAX_QUANTITY}\" value=\"{}\" required></label>",
                    escape(quantity)
                ),
                "Buy",
            ),
        };
        main.push_str(&format!(
            "<section class=\"product\" id=\"product-{sku}\">\n\
             <h2>{name}</h2>\n<p>{description}</p>\n\
             <p><span class=\"price\">{price}</span> · <small>{kind}</small></p>\n\
             <form method=\"post\" action=\"/orders\">\n\
             <input type=\"hidden\" name=\"sku\" value=\"{sku}\">\n\
             {quantity_field}\n\
             <label>Email <input type=\"email\" name=\"customer_email\" autocomplete=\"email\" \
             value=\"{email}\" required></label>\n\
             <button type=\"submit\">{button}</button>\n</form>\n</section>\n",
            sku = escape(&product.sku),
            name = escape(&product.name),
            description = escape(&product.description),
            kind = escape(&kind),
            email = escape(email),
        ));
    }
    main
}

#[cfg(test)]
mod tests {
    use ipn_core::money::{Currency, Money};

    use super::*;
    use crate::catalog::Product;

    #[test]
    fn every_product_has_a_buy_form_with_its_price() {
        let page = render(&Catalog::demo(), None, None);
        for sku in ["mug", "tshirt", "ebook", "membership"] {
            assert!(
                page.contains(&format!("name=\"sku\" value=\"{sku}\"")),
                "{sku}: {page}"
            );
        }
        assert!(page.contains("Enamel mug"));
        assert!(page.contains("12.50 USD"));
        assert_eq!(
            page.matches("<form method=\"post\" action=\"/orders\">")
                .count(),
            4
        );
        assert_eq!(page.matches(">Buy</button>").count(), 3);
        // The subscription: its price per period, one at a time.
        assert!(page.contains("4.99 USD / month"), "{page}");
        assert_eq!(page.matches(">Subscribe</button>").count(), 1);
        assert_eq!(
            page.matches("<input type=\"hidden\" name=\"quantity\" value=\"1\">")
                .count(),
            1
        );
    }

    #[test]
    fn names_emails_and_problems_are_escaped() {
        let evil = "<script>alert(1)</script>";
        let catalog = Catalog::new(vec![Product {
            sku: "mug".into(),
            name: evil.into(),
            kind: ItemKind::Physical,
            price: Money::new(100, Currency::USD),
            description: format!("\"{evil}"),
            download: None,
            subscription: None,
        }])
        .unwrap();
        let filled = Filled {
            sku: "mug".into(),
            quantity: format!("1\"{evil}"),
            customer_email: format!("a@b.c\"><{evil}"),
        };
        let page = render(&catalog, Some(&filled), Some(evil));
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("\"><"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn the_form_reads_into_an_order_request() {
        let form = Filled::parse(b"sku=mug&quantity=+2+&customer_email=ann%40example.com&x=1");
        let request = form.request().unwrap();
        assert_eq!(request.items[0].sku, "mug");
        assert_eq!(request.items[0].quantity, 2);
        assert_eq!(request.customer_email, "ann@example.com");
        let bad = Filled::parse(b"sku=mug&quantity=two&customer_email=a%40b.c");
        assert!(bad.request().unwrap_err().contains("whole number"));
        assert!(Filled::parse(b"sku=mug").request().is_err(), "no quantity");
    }
}
