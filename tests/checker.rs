//! The checker the delivery tests rely on really catches a lost event and an
//! out-of-order pair (so a passing test means something).

mod support;

use support::checker::verify;
use support::writers::Written;

fn written() -> Vec<Written> {
    ["1:a", "2:b", "3:a", "4:b"]
        .iter()
        .map(|s| {
            let (id, agg) = s.split_once(':').expect("id:agg");
            Written {
                id: id.into(),
                aggregate_id: agg.into(),
            }
        })
        .collect()
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn accepts_complete_ordered_delivery_and_counts_duplicates() {
    let report = verify(&written(), &ids(&["1", "2", "1", "3", "4", "4"]));
    assert_eq!(report.duplicates, 2);
    // Interleaving across aggregates is fine.
    verify(&written(), &ids(&["2", "1", "4", "3"]));
}

#[test]
#[should_panic(expected = "never arrived")]
fn detects_a_lost_event() {
    verify(&written(), &ids(&["1", "2", "3"]));
}

#[test]
#[should_panic(expected = "arrived first before")]
fn detects_an_out_of_order_pair() {
    verify(&written(), &ids(&["3", "1", "2", "4"]));
}
