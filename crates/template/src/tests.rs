use super::*;

fn err(text: &str) -> ParseError {
    Template::parse(text).unwrap_err()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn single_values_quoted_and_unquoted_are_parsed() {
    let t =
        Template::parse("PORT = 2633\nLISTEN_ADDRESS=\"0.0.0.0\"\n  NAME   =  my vm  \n").unwrap();
    assert_eq!(t.single("PORT"), Some("2633"));
    assert_eq!(t.single("LISTEN_ADDRESS"), Some("0.0.0.0"));
    assert_eq!(t.single("NAME"), Some("my vm"));
    assert_eq!(
        t.attrs.iter().map(|a| a.line).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn quoted_names_and_keys_stand_for_the_name_as_in_opennebula() {
    let t = Template::parse("BACKUP_CONFIG = [\"MODE\"=\"FULL\"]\n\"Label\" = x").unwrap();
    assert_eq!(
        t.get("BACKUP_CONFIG").unwrap().vector_get("MODE"),
        Some("FULL")
    );
    assert_eq!(t.single("LABEL"), Some("x"));
    assert!(Template::parse("V = [ \"\" = 1 ]").is_err());
}

#[test]
fn lower_case_names_and_keys_are_uppercased() {
    let t = Template::parse("memory = 512\ndisk = [ image_id = 3 ]").unwrap();
    assert_eq!(t.attrs[0].name, "MEMORY");
    assert_eq!(t.attrs[1].value, Value::Vector(pairs(&[("IMAGE_ID", "3")])));
    assert_eq!(t.single("Memory"), Some("512"));
    assert_eq!(t.get("disk").unwrap().vector_get("Image_Id"), Some("3"));
}

#[test]
fn quoted_strings_may_span_several_lines() {
    let t = Template::parse("A = \"one\ntwo\n  three\"\nB = 1").unwrap();
    assert_eq!(t.single("A"), Some("one\ntwo\n  three"));
    assert_eq!(t.get("B").unwrap().line, 4);
}

#[test]
fn escapes_handle_quote_and_backslash_and_keep_others_literal() {
    let t = Template::parse(r#"A = "say \"hi\" \\ c:\path\n""#).unwrap();
    assert_eq!(t.single("A"), Some(r#"say "hi" \ c:\path\n"#));
}

#[test]
fn empty_quoted_string_is_allowed() {
    let t = Template::parse("A = \"\"\nV = [ X = \"\" ]").unwrap();
    assert_eq!(t.single("A"), Some(""));
    assert_eq!(t.get("V").unwrap().vector_get("x"), Some(""));
}

#[test]
fn vectors_on_one_line_are_parsed() {
    let t = Template::parse("DB = [ BACKEND = \"sqlite\", TIMEOUT = 2500 ]").unwrap();
    assert_eq!(
        t.vector("DB").unwrap(),
        pairs(&[("BACKEND", "sqlite"), ("TIMEOUT", "2500")])
    );
}

#[test]
fn vectors_on_many_lines_with_or_without_commas_are_parsed() {
    let text = "DB = [\n  BACKEND = sqlite,\n  SERVER = \"localhost\"\n  PORT = 0\n\n]\nNEXT = 1";
    let t = Template::parse(text).unwrap();
    assert_eq!(
        t.vector("db").unwrap(),
        pairs(&[
            ("BACKEND", "sqlite"),
            ("SERVER", "localhost"),
            ("PORT", "0")
        ])
    );
    assert_eq!(t.get("NEXT").unwrap().line, 7);
}

#[test]
fn trailing_comma_before_closing_bracket_is_allowed() {
    let t = Template::parse("V = [ A = 1, B = \"2\", ]\nW=[A=1,\n]").unwrap();
    assert_eq!(t.vector("V").unwrap(), pairs(&[("A", "1"), ("B", "2")]));
    assert_eq!(t.vector("W").unwrap(), pairs(&[("A", "1")]));
}

#[test]
fn empty_vector_is_allowed() {
    let t = Template::parse("V = [ ]").unwrap();
    assert_eq!(t.vector("V"), Some(&[][..]));
}

#[test]
fn comments_are_allowed_everywhere_but_not_inside_quotes() {
    let text = "# header\nA = 1 # trailing\n   # indented\nB = \"x # y\" # c\nV = [ # open\n  K = v, # after\n  # between\n  L = \"#\" # end\n] # close\n";
    let t = Template::parse(text).unwrap();
    assert_eq!(t.single("A"), Some("1"));
    assert_eq!(t.single("B"), Some("x # y"));
    assert_eq!(t.vector("V").unwrap(), pairs(&[("K", "v"), ("L", "#")]));
}

#[test]
fn blank_input_and_windows_line_endings_are_tolerated() {
    assert_eq!(Template::parse("").unwrap(), Template::default());
    assert_eq!(Template::parse("\n \n# only\n").unwrap().attrs.len(), 0);
    let t = Template::parse("A = 1\r\nB = \"x\r\ny\"\r\nV = [\r\n K = 2,\r\n]\r\n").unwrap();
    assert_eq!(t.single("A"), Some("1"));
    assert_eq!(t.single("B"), Some("x\ny"));
    assert_eq!(t.vector("V").unwrap(), pairs(&[("K", "2")]));
}

#[test]
fn repeated_attributes_keep_their_order() {
    let t = Template::parse("DISK = [ ID = 0 ]\nNIC = [ ID = 0 ]\nDISK = [ ID = 1 ]\n").unwrap();
    let ids: Vec<_> = t
        .get_all("disk")
        .map(|a| a.vector_get("ID").unwrap())
        .collect();
    assert_eq!(ids, ["0", "1"]);
    assert_eq!(t.attrs[1].name, "NIC");
}

#[test]
fn single_and_vector_skip_attributes_of_the_other_kind() {
    let t = Template::parse("A = [ X = 1 ]\nA = plain").unwrap();
    assert_eq!(t.single("A"), Some("plain"));
    assert_eq!(t.vector("A").unwrap(), pairs(&[("X", "1")]));
    assert_eq!(t.get("A").unwrap().vector_get("X"), Some("1"));
    assert_eq!(t.attrs[1].vector_get("X"), None);
    assert_eq!(t.single("MISSING"), None);
}

#[test]
fn set_push_and_remove_edit_the_template() {
    let mut t = Template::parse("A = 1\nB = 2\nA = 3").unwrap();
    t.set("a", Value::Single("9".into()));
    assert_eq!(
        t.attrs.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["A", "B"]
    );
    assert_eq!(t.single("A"), Some("9"));
    t.push("c", Value::Vector(pairs(&[("K", "v")])));
    t.set("new", Value::Single("x".into()));
    assert_eq!(
        t.attrs.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["A", "B", "C", "NEW"]
    );
    t.remove("b");
    assert!(t.get("B").is_none());
    assert_eq!(t.attrs.len(), 3);
}

#[test]
fn errors_report_line_and_attribute_name() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "A = 1\nNAME = \"abc\n\n",
            2,
            "unterminated string in attribute \"NAME\"",
        ),
        ("A = 1\n\nPORT 2633", 3, "expected '=' after \"PORT\""),
        ("A = 1\n= 3", 2, "expected attribute name, found '='"),
        // A quote before no name is still no name (a quoted name is the name: see above).
        (
            "A = 1\n  \"\" = 3",
            2,
            "expected attribute name, found '\"'",
        ),
        (
            "A =\nB = 1",
            1,
            "expected value after '=' in attribute \"A\"",
        ),
        (
            "A = # nothing",
            1,
            "expected value after '=' in attribute \"A\"",
        ),
        (
            "A = \"x\" y",
            1,
            "expected end of line after value of \"A\", found 'y'",
        ),
        (
            "A = [ K = 1 ] x",
            1,
            "expected end of line after value of \"A\", found 'x'",
        ),
        (
            "X = 1\nFEDERATION = [\n MODE = \"STANDALONE\",\n",
            2,
            "unterminated vector \"FEDERATION\"",
        ),
        ("V = [ K = 1", 1, "unterminated vector \"V\""),
        ("V = [ K", 1, "unterminated vector \"V\""),
        ("V = [ K =", 1, "unterminated vector \"V\""),
        (
            "V = [\n K = 1,\n L 2 ]",
            3,
            "expected '=' after \"L\" in vector \"V\"",
        ),
        (
            "V = [\n K = 1,,\n]",
            2,
            "expected key or ']' in vector \"V\", found ','",
        ),
        (
            "V = [ K = , L = 1 ]",
            1,
            "expected value for \"K\" in vector \"V\"",
        ),
        (
            "V = [\n K =\n]",
            2,
            "expected value for \"K\" in vector \"V\"",
        ),
        (
            "V = [ K = [ L = 1 ] ]",
            1,
            "nested vector not allowed for \"K\" in vector \"V\"",
        ),
        (
            "V = [ K = \"a\" L = 1 ]",
            1,
            "expected ',' or ']' after \"K\" in vector \"V\", found 'L'",
        ),
        (
            "V = [\n K = \"a\n",
            2,
            "unterminated string in vector \"V\" key \"K\"",
        ),
    ];
    for (text, line, message) in cases {
        let e = err(text);
        assert_eq!(
            (e.line, e.message.as_str()),
            (*line, *message),
            "input {text:?}"
        );
    }
    assert_eq!(
        err("A = 1\nB = 2\n\n\n\n\nNAME = \"x").to_string(),
        "line 7: unterminated string in attribute \"NAME\""
    );
    assert_eq!(
        err("x = 1\ny = 2\nPORT").to_string(),
        "line 3: expected '=' after \"PORT\""
    );
    assert_eq!("A".parse::<Template>().unwrap_err().line, 1);
}

#[test]
fn to_text_prints_quoted_lines_and_vectors() {
    let mut t = Template::default();
    t.push("NAME", Value::Single("a \"b\" \\c".into()));
    t.push("V", Value::Vector(pairs(&[("A", "b"), ("C", "d")])));
    t.push("E", Value::Vector(vec![]));
    assert_eq!(
        t.to_text(),
        "NAME=\"a \\\"b\\\" \\\\c\"\nV=[\n  A=\"b\",\n  C=\"d\" ]\nE=[ ]\n"
    );
    assert_eq!(t.to_string(), t.to_text());
}

#[test]
fn to_text_round_trips_through_parse() {
    let mut t = Template::default();
    t.push(
        "S",
        Value::Single("multi\nline # not comment, ] \"q\" \\ \\n end".into()),
    );
    t.push("EMPTY", Value::Single(String::new()));
    t.push(
        "V",
        Value::Vector(pairs(&[("A", "x, y ]"), ("B", ""), ("C", "  spaced  ")])),
    );
    t.push("S", Value::Single("second".into()));
    t.push("E", Value::Vector(vec![]));
    let back = Template::parse(&t.to_text()).unwrap();
    let strip = |t: &Template| -> Vec<(String, Value)> {
        t.attrs
            .iter()
            .map(|a| (a.name.clone(), a.value.clone()))
            .collect()
    };
    assert_eq!(strip(&back), strip(&t));
    assert_eq!(back.to_text(), t.to_text());
}

#[test]
fn to_xml_prints_attributes_and_vector_keys_in_name_order_as_opennebula() {
    let t = Template::parse("B = 1\nA = [ Z = 1, Y = 2 ]\nB = 0\nC = 3").unwrap();
    assert_eq!(
        t.to_xml(),
        "<TEMPLATE><A><Y><![CDATA[2]]></Y><Z><![CDATA[1]]></Z></A><B><![CDATA[1]]></B>\
         <B><![CDATA[0]]></B><C><![CDATA[3]]></C></TEMPLATE>"
    );
}

#[test]
fn to_xml_uses_cdata_and_splits_end_markers() {
    let t = Template::parse("KEY = v\nVEC = [ A = b, C = \"x]]>y\" ]\nE = \"\"").unwrap();
    assert_eq!(
        t.to_xml(),
        "<TEMPLATE><E><![CDATA[]]></E><KEY><![CDATA[v]]></KEY><VEC><A><![CDATA[b]]></A>\
         <C><![CDATA[x]]]]><![CDATA[>y]]></C></VEC></TEMPLATE>"
    );
    assert_eq!(Template::default().to_xml(), "<TEMPLATE></TEMPLATE>");
}

const ONED_CONF: &str = r#"
#*******************************************************************************
#                       OpenNebula Configuration file
#*******************************************************************************

#*******************************************************************************
# Daemon configuration attributes
#-------------------------------------------------------------------------------
#  LOG: Configuration for the logging system
#   system: defines the logging system (file, syslog, std)
#   debug_level: 0 = ERROR, 1 = WARNING, 2 = INFO, 3 = DEBUG
#*******************************************************************************

LOG = [
  SYSTEM      = "file",
  DEBUG_LEVEL = 3
]

#MANAGER_TIMER = 15

MONITORING_INTERVAL_HOST      = 180
MONITORING_INTERVAL_VM        = 180
MONITORING_INTERVAL_DATASTORE = 300

SCRIPTS_REMOTE_DIR=/var/tmp/one

PORT = 2633

LISTEN_ADDRESS = "0.0.0.0"

DB = [ BACKEND = "sqlite",
       TIMEOUT = 2500 ]

# Sample configuration for MySQL
# DB = [ BACKEND = "mysql",
#        SERVER  = "localhost",
#        PORT    = 0,
#        USER    = "oneadmin",
#        PASSWD  = "oneadmin",
#        DB_NAME = "opennebula",
#        CONNECTIONS = 25,
#        COMPARE_BINARY = "no" ]

VNC_PORTS = [
    START    = 5900
#    RESERVED = "32768-65536"
]

#*******************************************************************************
# Federation & HA configuration attributes
#*******************************************************************************

FEDERATION = [
    MODE          = "STANDALONE",
    ZONE_ID       = 0,
    SERVER_ID     = -1,
    MASTER_ONED   = ""
]

RAFT = [
    LIMIT_PURGE          = 100000,
    LOG_RETENTION        = 250000,
    LOG_PURGE_TIMEOUT    = 60,
    ELECTION_TIMEOUT_MS  = 5000,
    BROADCAST_TIMEOUT_MS = 500,
    XMLRPC_TIMEOUT_MS    = 1000
]

# Executed when a server transits from follower->leader
# RAFT_LEADER_HOOK = [
#     COMMAND = "raft/vip.sh",
#     ARGUMENTS = "leader <interface> <ip_cidr>"
# ]
#RAFT_LEADER_HOOK = [ COMMAND = "raft/vip.sh", ARGUMENTS = "leader <interface> <ip_cidr>" ]

DEFAULT_COST = [
    CPU_COST     = 0,
    MEMORY_COST  = 0,
    DISK_COST    = 0
]

VM_MAD = [
    NAME           = "kvm",
    SUNSTONE_NAME  = "KVM",
    EXECUTABLE     = "one_vmm_exec",
    ARGUMENTS      = "-t 15 -r 0 kvm
                      -p",
    DEFAULT        = "vmm_exec/vmm_exec_kvm.conf",
    TYPE           = "kvm",
    KEEP_SNAPSHOTS = "yes",
    LIVE_RESIZE    = "yes",
    IMPORTED_VMS_ACTIONS = "terminate, terminate-hard, hold, release, suspend,
        resume, delete, reboot, reboot-hard, resched, unresched, disk-attach,
        disk-detach, nic-attach, nic-detach, snapshot-create, snapshot-delete"
]

VM_MAD = [
    NAME           = "lxc",
    SUNSTONE_NAME  = "LXC",
    EXECUTABLE     = "one_vmm_exec",
    ARGUMENTS      = "-t 15
                      -r 0 lxc",
    DEFAULT        = "vmm_exec/vmm_exec_lxc.conf",
    TYPE           = "xml",
    KEEP_SNAPSHOTS = "no",
]

VM_MAD = [ NAME = "dummy", EXECUTABLE = "one_vmm_dummy", TYPE = "xml" ]

DEFAULT_UMASK = 177

DEFAULT_AUTH = "default"

SESSION_EXPIRATION_TIME = 900
"#;

#[test]
fn shipped_oned_conf_excerpt_parses() {
    let t = Template::parse(ONED_CONF).unwrap();
    let log = t.get("LOG").unwrap();
    assert_eq!(log.vector_get("system"), Some("file"));
    assert_eq!(log.vector_get("DEBUG_LEVEL"), Some("3"));
    assert_eq!(t.single("MONITORING_INTERVAL_HOST"), Some("180"));
    assert_eq!(t.single("SCRIPTS_REMOTE_DIR"), Some("/var/tmp/one"));
    assert_eq!(t.single("PORT"), Some("2633"));
    assert_eq!(t.single("LISTEN_ADDRESS"), Some("0.0.0.0"));
    assert_eq!(t.get_all("DB").count(), 1);
    assert_eq!(vector_get(t.vector("DB").unwrap(), "TIMEOUT"), Some("2500"));
    assert_eq!(t.vector("VNC_PORTS").unwrap(), pairs(&[("START", "5900")]));
    let fed = t.vector("FEDERATION").unwrap();
    assert_eq!(vector_get(fed, "MODE"), Some("STANDALONE"));
    assert_eq!(vector_get(fed, "SERVER_ID"), Some("-1"));
    assert_eq!(vector_get(fed, "MASTER_ONED"), Some(""));
    let raft = t.vector("RAFT").unwrap();
    assert_eq!(raft.len(), 6);
    assert_eq!(vector_get(raft, "ELECTION_TIMEOUT_MS"), Some("5000"));
    assert_eq!(vector_get(raft, "XMLRPC_TIMEOUT_MS"), Some("1000"));
    assert!(t.get("RAFT_LEADER_HOOK").is_none());
    assert!(t.get("MANAGER_TIMER").is_none());
    let mads: Vec<_> = t.get_all("VM_MAD").collect();
    assert_eq!(mads.len(), 3);
    assert_eq!(
        mads.iter()
            .map(|m| m.vector_get("NAME").unwrap())
            .collect::<Vec<_>>(),
        ["kvm", "lxc", "dummy"]
    );
    assert_eq!(
        mads[0].vector_get("ARGUMENTS"),
        Some("-t 15 -r 0 kvm\n                      -p")
    );
    assert!(mads[0]
        .vector_get("IMPORTED_VMS_ACTIONS")
        .unwrap()
        .ends_with("snapshot-delete"));
    assert_eq!(t.single("DEFAULT_UMASK"), Some("177"));
    assert_eq!(t.single("SESSION_EXPIRATION_TIME"), Some("900"));
    let reparsed = Template::parse(&t.to_text()).unwrap();
    assert_eq!(reparsed.to_text(), t.to_text());
    assert_eq!(reparsed.to_xml(), t.to_xml());
}

/// Checks `xml` as a strict, namespace-aware parser (expat, as pyone uses) would: only XML 1.0
/// characters, balanced tags, and element names that are `NCName`s (no `:`, so no unbound
/// namespace prefix, and no leading digit, `-` or `.`).
fn assert_well_formed(xml: &str) {
    use quick_xml::events::Event;
    if let Some(c) = xml.chars().find(|&c| !is_xml_char(c)) {
        panic!("character {c:?} is not allowed in XML 1.0: {xml:?}");
    }
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    loop {
        match reader.read_event() {
            Err(e) => panic!("malformed XML ({e}): {xml:?}"),
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                assert!(is_attribute_name(&name), "element <{name}> in {xml:?}");
                if matches!(reader.read_event(), Ok(Event::Eof)) {
                    break;
                }
                depth += 1;
            }
            Ok(Event::Text(t)) => {
                let s = t.unescape().unwrap();
                assert!(s.chars().all(is_xml_char), "{xml:?}");
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
        }
    }
    assert!(depth > 0, "no element in {xml:?}");
}

#[test]
fn issue_10_attribute_names_that_are_not_xml_names_are_refused() {
    let cases: &[(&str, usize, &str)] = &[
        ("A = 1\n1BAD = x", 2, "invalid attribute name \"1BAD\""),
        ("-X = 1", 1, "invalid attribute name \"-X\""),
        (".X = 1", 1, "invalid attribute name \".X\""),
        ("A:B = 1", 1, "invalid attribute name \"A:B\""),
        ("A\u{1}B = 1", 1, "invalid attribute name \"A\\x01B\""),
        ("\u{1b}X = 1", 1, "invalid attribute name \"\\x1BX\""),
        ("ÉTÉ = 1", 1, "invalid attribute name \"ÉTÉ\""),
        (
            "A = 1\nV = [ K = 1,\n 2K = 2 ]",
            2,
            "invalid key in vector \"V\" \"2K\"",
        ),
        (
            "<TEMPLATE><A:B>x</A:B></TEMPLATE>",
            1,
            "invalid attribute name \"A:B\"",
        ),
        (
            "<TEMPLATE><V><x:y>1</x:y></V></TEMPLATE>",
            1,
            "invalid key in vector \"V\" \"X:Y\"",
        ),
        ("<TEMPLATE><_1>x</_1><n.1>y</n.1></TEMPLATE>", 0, ""),
    ];
    for (text, line, message) in cases {
        match Template::parse_checked(text) {
            Ok(_) => assert!(message.is_empty(), "{text:?} was accepted"),
            Err(e) => {
                assert!(
                    !message.is_empty() && e.message.starts_with(message),
                    "{text:?}: {e}"
                );
                if !text.starts_with('<') {
                    assert_eq!(e.line, *line, "{text:?}");
                }
            }
        }
    }
    assert_eq!(
        Template::parse("\u{1b}[31m = 1").unwrap_err().message,
        "expected '=' after \"\\x1B\""
    );
    for good in ["A.B = 1", "X-Y = 1", "_A = 1", "a1 = [ k_2 = 1, k.3 = 2 ]"] {
        Template::parse_checked(good).unwrap();
    }
}

#[test]
fn issue_10_values_with_characters_xml_cannot_carry_are_refused() {
    for (text, shown) in [
        ("A = \"x\u{1}y\"", "\\x01"),
        ("A = x\u{1b}[31m", "\\x1B"),
        ("A = \"\u{b}\"", "\\x0B"),
        ("V = [ K = \"\u{0}\" ]", "\\x00"),
        ("A = \"\u{FFFE}\"", "\\u{FFFE}"),
        ("<TEMPLATE><A>&#1;</A></TEMPLATE>", "\\x01"),
        ("<TEMPLATE><A><![CDATA[\u{7}]]></A></TEMPLATE>", "\\x07"),
    ] {
        let e = Template::parse_checked(text).unwrap_err();
        assert!(
            e.message
                .starts_with(&format!("invalid character {shown} in the value of")),
            "{text:?}: {e}"
        );
    }
    // Everything XML can carry is kept as given, even what needs escaping or splitting.
    let odd = "tab\tnl\ncr\r <b>&amp; ]]> \"q\" 'a' 😀 \u{7f}\u{85}";
    let mut t = Template::default();
    t.push("A", Value::Single(odd.to_string()));
    let text = t.to_text();
    assert_eq!(
        Template::parse_checked(&text).unwrap().single("A"),
        Some(odd)
    );
}

#[test]
fn issue_10_to_xml_is_well_formed_whatever_the_template_holds() {
    // Text stored before names and values were checked still loads...
    let stored = "1BAD = \"x\"\nA:B = \"y\"\nCTL = \"a\u{1}b\u{1b}c\"\n\
                  V = [ -K = 1, OK = \"]]>\", .K = 2 ]\nGOOD = \"<&>\\\"'😀\"\n";
    let t = Template::parse(stored).unwrap();
    assert_eq!(t.attrs.len(), 5);
    assert!(t.validate().is_err());
    // ...and prints as XML that a strict parser reads: bad names are skipped, bad characters
    // replaced, the rest kept.
    let xml = t.to_xml();
    assert_well_formed(&xml);
    assert_eq!(
        xml,
        "<TEMPLATE><CTL><![CDATA[a\u{FFFD}b\u{FFFD}c]]></CTL>\
         <GOOD><![CDATA[<&>\"'😀]]></GOOD>\
         <V><OK><![CDATA[]]]]><![CDATA[>]]></OK></V></TEMPLATE>"
    );
    let back = Template::parse_checked(&xml).unwrap();
    assert_eq!(back.single("CTL"), Some("a\u{FFFD}b\u{FFFD}c"));
    assert_eq!(back.get("V").unwrap().vector_get("OK"), Some("]]>"));
    assert_eq!(back.single("GOOD"), Some("<&>\"'😀"));
    // A template built in code is printed the same way.
    let mut built = Template::default();
    built.push("9", Value::Single("x".into()));
    built.push("K", Value::Single("\u{0}\u{FFFF}".into()));
    assert_eq!(
        built.to_xml_as("USER_TEMPLATE"),
        "<USER_TEMPLATE><K><![CDATA[\u{FFFD}\u{FFFD}]]></K></USER_TEMPLATE>"
    );
}

#[test]
fn issue_10_xml_templates_parse_faithfully() {
    let xml = "<TEMPLATE><NAME>a &amp; b</NAME><Q><![CDATA[x]]]]><![CDATA[>y]]></Q>\
               <U>😀 &lt;&quot;&apos;</U><DISK><SIZE>1</SIZE><K>]]&gt;</K></DISK></TEMPLATE>";
    let t = Template::parse_checked(xml).unwrap();
    assert_eq!(t.single("NAME"), Some("a & b"));
    assert_eq!(t.single("Q"), Some("x]]>y"));
    assert_eq!(t.single("U"), Some("😀 <\"'"));
    assert_eq!(t.get("DISK").unwrap().vector_get("K"), Some("]]>"));
    // And what is stored (text) comes back the same.
    let again = Template::parse_checked(&t.to_text()).unwrap();
    assert_eq!(
        again,
        Template {
            attrs: again.attrs.clone()
        }
    );
    assert_eq!(again.to_xml(), t.to_xml());
    assert_well_formed(&t.to_xml());
}
