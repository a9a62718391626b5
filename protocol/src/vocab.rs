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
        /// Signed by its author and waiting for approval; not in force.
        Submitted => "submitted", "Submitted for approval";
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
        /// Safeguarding adults and children: concerns, referrals, disclosures.
        Safeguarding => "safeguarding", "Safeguarding";
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
        /// Police custody suite.
        PoliceCustody => "police-custody", "Police custody";
        /// Court cells and court custody.
        CourtCustody => "court-custody", "Court custody";
        /// Approved premises (probation hostels).
        ApprovedPremises => "approved-premises", "Approved premises";
        /// Short-term holding facility (immigration).
        ShortTermHolding => "short-term-holding", "Short-term holding facility";
        /// Pre-departure accommodation (immigration).
        PreDeparture => "pre-departure", "Pre-departure accommodation";
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

/// The word that stands for every nation of the UK in front matter, the
/// CLI and filters.
pub const UK: &str = "uk";

vocabulary!(
    /// A member of staff's job, which read-and-acknowledge requests name
    /// ("all nurses must read version 3").
    Job, "job", {
        /// A doctor: GP, psychiatrist or other.
        Doctor => "doctor", "Doctor";
        /// A registered nurse, mental-health nurse included.
        Nurse => "nurse", "Nurse";
        /// A pharmacist.
        Pharmacist => "pharmacist", "Pharmacist";
        /// A pharmacy technician.
        PharmacyTechnician => "pharmacy-technician", "Pharmacy technician";
        /// A healthcare assistant or support worker.
        HealthcareAssistant => "healthcare-assistant", "Healthcare assistant";
        /// A substance-misuse or recovery worker.
        SubstanceMisuseWorker => "substance-misuse-worker", "Substance misuse worker";
        /// A psychologist, counsellor or therapist.
        Therapist => "therapist", "Psychologist or therapist";
        /// A dentist or dental nurse.
        Dental => "dental", "Dental team";
        /// Allied health: physiotherapy, occupational therapy and others.
        AlliedHealth => "allied-health", "Allied health professional";
        /// Administration and reception.
        Administrator => "administrator", "Administrator";
        /// A manager or lead.
        Manager => "manager", "Manager";
    }
);

impl Nation {
    /// Reads a set of nations as people write it: one slug, several
    /// separated by commas, or `uk` for all four. Sorted, without repeats.
    pub fn parse_set(s: &str) -> Result<Vec<Nation>, UnknownValue> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.eq_ignore_ascii_case(UK) {
                out.extend_from_slice(Nation::ALL);
            } else {
                out.push(part.parse().map_err(|mut e: UnknownValue| {
                    e.expected = Nation::choices();
                    e
                })?);
            }
        }
        if out.is_empty() {
            return Err(UnknownValue {
                vocabulary: "nation",
                got: s.to_string(),
                expected: Nation::choices(),
            });
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The accepted words: every slug and `uk`.
    pub fn choices() -> String {
        let mut v: Vec<&str> = Nation::ALL.iter().map(|n| n.slug()).collect();
        v.push(UK);
        v.join(", ")
    }

    /// Whether `set` names every nation of the UK.
    pub fn is_uk(set: &[Nation]) -> bool {
        Nation::ALL.iter().all(|n| set.contains(n))
    }

    /// A set as people read it: "UK-wide", "England", "England and Wales",
    /// "England, Wales and Scotland".
    pub fn set_label(set: &[Nation]) -> String {
        if Nation::is_uk(set) {
            return "UK-wide".to_string();
        }
        let labels: Vec<&str> = set.iter().map(|n| n.label()).collect();
        match labels.split_last() {
            None => String::new(),
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        }
    }

    /// A set as front matter and the CLI write it: `uk`, one slug, or
    /// slugs separated by commas.
    pub fn set_slugs(set: &[Nation]) -> Vec<&'static str> {
        if Nation::is_uk(set) {
            return vec![UK];
        }
        set.iter().map(|n| n.slug()).collect()
    }
}

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

    #[test]
    fn nations_are_one_several_or_the_uk() {
        assert_eq!(Nation::parse_set("wales"), Ok(vec![Nation::Wales]));
        let ew = Nation::parse_set("Wales, england,wales").expect("two");
        assert_eq!(ew, vec![Nation::England, Nation::Wales]);
        assert_eq!(Nation::set_label(&ew), "England and Wales");
        assert_eq!(Nation::set_slugs(&ew), vec!["england", "wales"]);
        let uk = Nation::parse_set("UK").expect("uk");
        assert_eq!(uk, Nation::ALL.to_vec());
        assert_eq!(Nation::set_label(&uk), "UK-wide");
        assert_eq!(Nation::set_slugs(&uk), vec!["uk"]);
        let three = [Nation::England, Nation::Wales, Nation::Scotland];
        assert_eq!(Nation::set_label(&three), "England, Wales and Scotland");
        let err = Nation::parse_set("england, gb").expect_err("unknown");
        assert!(err.to_string().contains("gb"), "{err}");
        assert!(Nation::parse_set(" , ").is_err());
    }
}
