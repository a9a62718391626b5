//! The controlled vocabularies of the library: item kinds, statuses, care
//! pathways, setting types and nations.
//!
//! Each value has a stable slug (used in front matter, JSON, the CLI and the
//! replicated documents) and a label for people. Unknown slugs are refused
//! with the list of accepted ones, so a typo never silently files a policy
//! under nothing.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A slug that is not one of a vocabulary's values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {vocabulary} {got:?}; expected one of: {expected}")]
pub struct UnknownValue {
    /// Which vocabulary was being read.
    pub vocabulary: &'static str,
    /// What was given.
    pub got: String,
    /// The accepted slugs, comma separated.
    pub expected: String,
}

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident, $vocab:expr, { $($(#[$vdoc:meta])* $variant:ident => $slug:expr, $label:expr;)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in display order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stable machine name.
            pub fn slug(self) -> &'static str {
                match self { $($name::$variant => $slug,)+ }
            }

            /// The name shown to people.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.slug())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let wanted = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.slug() == wanted)
                    .ok_or_else(|| UnknownValue {
                        vocabulary: $vocab,
                        got: s.to_string(),
                        expected: $name::ALL.iter().map(|v| v.slug()).collect::<Vec<_>>().join(", "),
                    })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.slug())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

vocabulary!(
    /// What sort of document an item is.
    Kind, "kind", {
        /// A statement of what the service does and why.
        Policy => "policy", "Policy";
        /// Step-by-step instructions.
        Procedure => "procedure", "Procedure";
        /// Clinical guidance with room for judgement.
        Guideline => "guideline", "Guideline";
        /// A quality-improvement initiative with aim, measures and PDSA cycles.
        QiInitiative => "qi-initiative", "QI initiative";
        /// A care pathway.
        Pathway => "pathway", "Care pathway";
        /// Anything else.
        Other => "other", "Other";
    }
);

vocabulary!(
    /// Where an item is in its life.
    Status, "status", {
        /// Being written; not for use.
        Draft => "draft", "Draft";
        /// In force.
        Published => "published", "Published";
        /// Replaced by a newer item.
        Superseded => "superseded", "Superseded";
        /// No longer in force and not replaced.
        Withdrawn => "withdrawn", "Withdrawn";
    }
);

vocabulary!(
    /// Care pathways an item belongs to.
    Pathway, "pathway", {
        /// General practice and nurse-led primary care.
        PrimaryCare => "primary-care", "Primary care";
        /// Mental health and in-reach.
        MentalHealth => "mental-health", "Mental health";
        /// Substance misuse and recovery.
        SubstanceMisuse => "substance-misuse", "Substance misuse";
        /// Pharmacy and medicines management.
        PharmacyMedicines => "pharmacy-medicines", "Pharmacy and medicines";
        /// Dental services.
        Dental => "dental", "Dental";
        /// Sexual health and blood-borne viruses.
        SexualHealth => "sexual-health", "Sexual health";
        /// Long-term conditions.
        LongTermConditions => "long-term-conditions", "Long-term conditions";
        /// Infection prevention and control.
        InfectionControl => "infection-control", "Infection prevention and control";
        /// Palliative and end-of-life care.
        PalliativeCare => "palliative-care", "Palliative and end-of-life care";
        /// Health promotion.
        HealthPromotion => "health-promotion", "Health promotion";
        /// Self-harm and suicide prevention.
        SelfHarmPrevention => "self-harm-prevention", "Self-harm and suicide prevention";
        /// Reception and first-night screening.
        ReceptionScreening => "reception-screening", "Reception screening";
        /// Release, transfer and continuity of care.
        ReleaseContinuity => "release-continuity", "Release and continuity of care";
        /// Emergency response.
        EmergencyCare => "emergency-care", "Emergency care";
        /// Learning disability and neurodiversity.
        LearningDisability => "learning-disability", "Learning disability and neurodiversity";
        /// Older people and frailty.
        OlderPeople => "older-people", "Older people";
        /// Women's health.
        WomensHealth => "womens-health", "Women's health";
        /// Children and young people.
        ChildrenYoungPeople => "children-young-people", "Children and young people";
        /// Clinical governance.
        Governance => "governance", "Clinical governance";
    }
);

vocabulary!(
    /// Types of secure setting.
    Setting, "setting", {
        /// High security prison.
        PrisonCatA => "prison-cat-a", "Category A prison";
        /// Category B prison.
        PrisonCatB => "prison-cat-b", "Category B prison";
        /// Category C prison.
        PrisonCatC => "prison-cat-c", "Category C prison";
        /// Open prison.
        PrisonCatD => "prison-cat-d", "Category D (open) prison";
        /// Local or remand prison.
        LocalRemand => "local-remand", "Local / remand prison";
        /// Women's prison.
        WomensPrison => "womens-prison", "Women's prison";
        /// Young offender institution.
        Yoi => "yoi", "Young offender institution (YOI)";
        /// Secure training centre.
        Stc => "stc", "Secure training centre (STC)";
        /// Secure children's home.
        SecureChildrensHome => "secure-childrens-home", "Secure children's home";
        /// Immigration removal centre.
        Irc => "irc", "Immigration removal centre (IRC)";
        /// Secure hospital.
        SecureHospital => "secure-hospital", "Secure hospital";
    }
);

vocabulary!(
    /// The UK nations, whose guidance and systems differ.
    Nation, "nation", {
        /// England.
        England => "england", "England";
        /// Wales.
        Wales => "wales", "Wales";
        /// Scotland.
        Scotland => "scotland", "Scotland";
        /// Northern Ireland.
        NorthernIreland => "northern-ireland", "Northern Ireland";
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_round_trip_and_unknowns_list_the_choices() {
        for k in Kind::ALL {
            assert_eq!(k.slug().parse::<Kind>(), Ok(*k));
        }
        assert_eq!("QI initiative".parse::<Kind>(), Ok(Kind::QiInitiative));
        let err = "prison-cat-e"
            .parse::<Setting>()
            .expect_err("unknown setting");
        assert!(err.to_string().contains("prison-cat-a"), "{err}");
    }
}
