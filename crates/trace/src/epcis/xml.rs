//! EPCIS 2.0 XML 绑定 (XML binding): reads `epcis:EPCISDocument` and
//! `epcisq:EPCISQueryDocument` documents, and single events, into the
//! JSON-LD form the rest of the capture path takes, so validation, hashing,
//! storage and the trace log are one code path for both syntaxes.
//!
//! The mapping is the standard's XML ↔ JSON-LD one: lists of `<epc>` become
//! arrays, `readPoint`/`bizLocation` objects with `id`, business
//! transactions, sources and destinations objects with their `type`
//! attribute, sensor metadata and reports objects of their attributes (the
//! numeric ones as numbers), CBV URNs short names (`urn:epcglobal:cbv:
//! bizstep:shipping` → `shipping`, which the JSON schema requires and which
//! hashes the same). The 1.2-style `<extension>` and `<baseExtension>`
//! wrappers are transparent. User extensions (elements and attributes in a
//! foreign namespace) keep their content under `prefix:localName` keys, and
//! every namespace they use is declared in the document's `@context`, so the
//! event hash expands them to `{namespace}localName` as the XML binding
//! does. A prefix that is not a valid URI scheme, is a URI scheme of its own
//! (`http`, `urn`, …), would redefine a GS1 vocabulary prefix, or names two
//! namespaces in one document is replaced by `ns1`, `ns2`, ….
//!
//! Left out, as the JSON path also stores only events: the EPCIS header
//! (SBDH and master data) and `xsi:` attributes. An element without a
//! namespace that the binding does not define, text mixed with child
//! elements, entity references other than XML's five and character
//! references, and encodings other than UTF-8 are refused with an
//! [`XmlError::Unsupported`] naming the element; documents that are not
//! well-formed with [`XmlError::Malformed`]; both with line and column.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use serde_json::{Map, Number, Value};
use shuxiang_core::CoreError;
use thiserror::Error;

use super::model::{EPCIS_CONTEXT, cbv_short_name};

/// Elements nested deeper than this are refused: EPCIS needs a dozen
/// levels, and the conversion recurses.
pub const MAX_DEPTH: usize = 64;

/// Why an XML body cannot be read as EPCIS.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XmlError {
    #[error("the body is not well-formed XML (line {line}, column {column}): {message}")]
    Malformed {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("unsupported in EPCIS XML (line {line}, column {column}): {message}")]
    Unsupported {
        line: usize,
        column: usize,
        message: String,
    },
}

impl From<XmlError> for CoreError {
    fn from(e: XmlError) -> Self {
        match e {
            XmlError::Malformed { .. } => CoreError::malformed("malformed_xml", e.to_string()),
            XmlError::Unsupported { .. } => CoreError::invalid("unsupported_xml", e.to_string()),
        }
    }
}

/// The namespaces of the EPCIS schemas themselves: elements in them are the
/// binding's own, like unqualified ones.
const EPCIS_NAMESPACES: &[&str] = &[
    "urn:epcglobal:epcis:xsd:1",
    "urn:epcglobal:epcis:xsd:2",
    "urn:epcglobal:epcis-query:xsd:1",
    "urn:epcglobal:epcis-query:xsd:2",
    "urn:epcglobal:epcis-masterdata:xsd:1",
    "urn:epcglobal:epcis-masterdata:xsd:2",
];

const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Prefixes the event hash gives a meaning of its own in values (`gs1:`,
/// `cbv:`) or that read as URI schemes; a document may use them only for
/// the standard namespace.
const RESERVED_PREFIXES: &[(&str, Option<&str>)] = &[
    ("gs1", Some("https://gs1.org/voc/")),
    ("cbv", Some("https://ref.gs1.org/cbv/")),
    ("epcis", Some("https://ref.gs1.org/epcis/")),
    ("rdfs", Some("http://www.w3.org/2000/01/rdf-schema#")),
    ("http", None),
    ("https", None),
    ("urn", None),
    ("ni", None),
];

const EVENT_TYPES: [&str; 5] = [
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
];

/// Sensor report attributes that are numbers in JSON.
const DECIMAL_ATTRIBUTES: &[&str] = &[
    "value",
    "minValue",
    "maxValue",
    "meanValue",
    "sDev",
    "percRank",
    "percValue",
];

/// One parsed element: its name resolved, attributes, children and text.
#[derive(Debug)]
struct Element {
    /// `None` for no namespace or one of the EPCIS namespaces.
    namespace: Option<String>,
    prefix: Option<String>,
    local: String,
    attributes: Vec<Attribute>,
    children: Vec<Element>,
    text: String,
    /// Byte offset of the start tag, for error positions.
    at: usize,
}

#[derive(Debug)]
struct Attribute {
    namespace: Option<String>,
    prefix: Option<String>,
    local: String,
    value: String,
}

impl Element {
    /// `prefix:local` as written, for messages.
    fn display_name(&self) -> String {
        match &self.prefix {
            Some(p) => format!("<{p}:{}>", self.local),
            None => format!("<{}>", self.local),
        }
    }

    fn is(&self, local: &str) -> bool {
        self.namespace.is_none() && self.local == local
    }

    fn text(&self) -> String {
        self.text.trim().to_owned()
    }

    fn attribute(&self, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.is_none() && a.local == local)
            .map(|a| a.value.as_str())
    }

    /// Children with `<extension>` / `<baseExtension>` wrappers dissolved.
    fn flat_children(&self) -> Vec<&Element> {
        let mut out = Vec::new();
        for child in &self.children {
            if child.is("extension") || child.is("baseExtension") {
                out.extend(child.flat_children());
            } else {
                out.push(child);
            }
        }
        out
    }
}

/// Reads an EPCIS XML document (`EPCISDocument` or `EPCISQueryDocument`)
/// into its JSON-LD form.
pub fn document_to_json(bytes: &[u8]) -> Result<Value, XmlError> {
    let text = utf8(bytes)?;
    let root = parse(text)?;
    Converter::new(text).document(&root)
}

/// Reads one event for `POST /epcis/events`: a bare event element, or an
/// `EPCISDocument` holding exactly one event. The event carries the
/// `@context` its extensions need.
pub fn event_to_json(bytes: &[u8]) -> Result<Value, XmlError> {
    let text = utf8(bytes)?;
    let root = parse(text)?;
    let mut converter = Converter::new(text);
    if root.namespace.is_none() && EVENT_TYPES.contains(&root.local.as_str()) {
        let mut event = converter.event(&root)?;
        if let Value::Object(map) = &mut event {
            map.insert("@context".into(), converter.context());
        }
        return Ok(event);
    }
    let document = converter.document(&root)?;
    let events = document["epcisBody"]["eventList"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match <[Value; 1]>::try_from(events) {
        Ok([mut event]) => {
            if let Value::Object(map) = &mut event {
                map.insert("@context".into(), document["@context"].clone());
            }
            Ok(event)
        }
        Err(events) => Err(converter.unsupported(
            &root,
            format!(
                "a single-event capture takes one event, this document holds {}",
                events.len()
            ),
        )),
    }
}

/// Whether a `Content-Type` names XML (`application/xml`, `text/xml`,
/// `application/…+xml`).
pub fn is_xml_content_type(value: &str) -> bool {
    let media = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media == "application/xml" || media == "text/xml" || media.ends_with("+xml")
}

fn utf8(bytes: &[u8]) -> Result<&str, XmlError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = position(&String::from_utf8_lossy(&bytes[..e.valid_up_to()]), e.valid_up_to());
        XmlError::Malformed {
            line,
            column,
            message: "the body is not UTF-8".into(),
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let offset = text.floor_char_boundary(offset.min(text.len()));
    let before = &text[..offset];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn malformed(text: &str, offset: usize, message: impl Into<String>) -> XmlError {
    let (line, column) = position(text, offset);
    XmlError::Malformed {
        line,
        column,
        message: message.into(),
    }
}

fn unsupported(text: &str, offset: usize, message: impl Into<String>) -> XmlError {
    let (line, column) = position(text, offset);
    XmlError::Unsupported {
        line,
        column,
        message: message.into(),
    }
}

/// Parses the document into a tree of elements, checking well-formedness
/// (one root, matching end tags, declared prefixes) on the way.
fn parse(text: &str) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let at = reader.buffer_position() as usize;
        let event = reader
            .read_event()
            .map_err(|e| malformed(text, reader.error_position() as usize, e.to_string()))?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(malformed(text, at, "content after the root element"));
            }
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(unsupported(
                        text,
                        at,
                        format!("elements nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                stack.push(element(&reader, &start, text, at)?);
            }
            Event::Empty(start) => {
                let e = element(&reader, &start, text, at)?;
                close(&mut stack, &mut root, e);
            }
            Event::End(_) => {
                let e = stack
                    .pop()
                    .ok_or_else(|| malformed(text, at, "end tag without a start tag"))?;
                close(&mut stack, &mut root, e);
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                push_text(&mut stack, &content, text, at)?;
            }
            Event::CData(t) => {
                let content = t.xml10_content();
                push_text(&mut stack, &content, text, at)?;
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match &*r.xml10_content() {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "apos" => "'".into(),
                        "quot" => "\"".into(),
                        other => {
                            return Err(unsupported(
                                text,
                                at,
                                format!("entity reference &{other}; (only XML's predefined entities are read)"),
                            ));
                        }
                    },
                    Err(e) => return Err(malformed(text, at, e.to_string())),
                };
                push_text(&mut stack, &resolved, text, at)?;
            }
            Event::Decl(decl) => {
                if let Some(encoding) = decl.encoding() {
                    let encoding = encoding.map_err(|e| malformed(text, at, e.to_string()))?;
                    if !encoding.eq_ignore_ascii_case("utf-8") && !encoding.eq_ignore_ascii_case("utf8") {
                        return Err(unsupported(
                            text,
                            at,
                            format!("encoding {encoding:?}: send the document as UTF-8"),
                        ));
                    }
                }
            }
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(malformed(
            text,
            text.len(),
            format!("the document ends inside {}", open.display_name()),
        ));
    }
    root.ok_or_else(|| malformed(text, text.len(), "the body holds no XML element"))
}

fn close(stack: &mut [Element], root: &mut Option<Element>, e: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(e),
        None => *root = Some(e),
    }
}

fn push_text(stack: &mut [Element], content: &str, text: &str, at: usize) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(e) => e.text.push_str(content),
        None if content.trim().is_empty() => {}
        None => return Err(malformed(text, at, "text outside the root element")),
    }
    Ok(())
}

fn element(reader: &NsReader<&[u8]>, start: &BytesStart, text: &str, at: usize) -> Result<Element, XmlError> {
    let (resolved, local) = reader.resolver().resolve_element(start.name());
    let element_namespace = resolve_namespace(resolved, start.name().0, text, at)?;
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| malformed(text, at, e.to_string()))?;
        let qname = attribute.key;
        if qname.as_namespace_binding().is_some() {
            continue;
        }
        let (resolved, attr_local) = reader.resolver().resolve_attribute(qname);
        let attr_namespace = resolve_namespace(resolved, qname.0, text, at)?;
        if attr_namespace.as_deref() == Some(XSI) {
            continue;
        }
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| malformed(text, at, e.to_string()))?;
        attributes.push(Attribute {
            namespace: attr_namespace,
            prefix: qname.prefix().map(|p| p.into_inner().to_owned()),
            local: attr_local.into_inner().to_owned(),
            value: value.into_owned(),
        });
    }
    Ok(Element {
        namespace: element_namespace,
        prefix: start.name().prefix().map(|p| p.into_inner().to_owned()),
        local: local.into_inner().to_owned(),
        attributes,
        children: Vec::new(),
        text: String::new(),
        at,
    })
}

fn resolve_namespace(
    resolved: ResolveResult<'_>,
    qname: &str,
    text: &str,
    at: usize,
) -> Result<Option<String>, XmlError> {
    match resolved {
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Bound(ns) if EPCIS_NAMESPACES.contains(&ns.0) => Ok(None),
        ResolveResult::Bound(ns) => Ok(Some(ns.0.to_owned())),
        ResolveResult::Unknown(prefix) => Err(malformed(
            text,
            at,
            format!("{qname}: the prefix {prefix:?} is not declared"),
        )),
    }
}

/// Turns the element tree into JSON, collecting the namespaces of user
/// extensions for the `@context`.
struct Converter<'t> {
    text: &'t str,
    /// Namespace → the prefix its keys use.
    prefixes: BTreeMap<String, String>,
}

impl<'t> Converter<'t> {
    fn new(text: &'t str) -> Self {
        Self {
            text,
            prefixes: BTreeMap::new(),
        }
    }

    fn unsupported(&self, e: &Element, message: impl Into<String>) -> XmlError {
        unsupported(self.text, e.at, message)
    }

    /// The `@context`: the standard one, then the user namespaces.
    fn context(&self) -> Value {
        let mut context = vec![Value::String(EPCIS_CONTEXT.to_owned())];
        if !self.prefixes.is_empty() {
            let terms: Map<String, Value> = self
                .prefixes
                .iter()
                .map(|(ns, prefix)| (prefix.clone(), Value::String(ns.clone())))
                .collect();
            context.push(Value::Object(terms));
        }
        Value::Array(context)
    }

    /// The JSON key of a name in `namespace`: bare without one, otherwise
    /// `prefix:local` with the prefix registered for the `@context`.
    fn key(&mut self, namespace: Option<&str>, prefix: Option<&str>, local: &str) -> String {
        let Some(ns) = namespace else {
            return local.to_owned();
        };
        if let Some(p) = self.prefixes.get(ns) {
            return format!("{p}:{local}");
        }
        let taken = |p: &str, prefixes: &BTreeMap<String, String>| prefixes.values().any(|v| v == p);
        let usable = prefix.filter(|p| {
            let mut chars = p.chars();
            let scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            let reserved = RESERVED_PREFIXES
                .iter()
                .any(|(r, standard)| r.eq_ignore_ascii_case(p) && *standard != Some(ns));
            scheme && !reserved && !taken(p, &self.prefixes)
        });
        let chosen = match usable {
            Some(p) => p.to_owned(),
            None => (1..)
                .map(|n| format!("ns{n}"))
                .find(|p| !taken(p, &self.prefixes))
                .unwrap_or_default(),
        };
        self.prefixes.insert(ns.to_owned(), chosen.clone());
        format!("{chosen}:{local}")
    }

    fn element_key(&mut self, e: &Element) -> String {
        self.key(e.namespace.as_deref(), e.prefix.as_deref(), &e.local)
    }

    fn document(&mut self, root: &Element) -> Result<Value, XmlError> {
        let query = match (root.namespace.is_none(), root.local.as_str()) {
            (true, "EPCISDocument") => false,
            (true, "EPCISQueryDocument") => true,
            _ => {
                return Err(self.unsupported(
                    root,
                    format!(
                        "the root element is {}, not an EPCIS document (epcis:EPCISDocument)",
                        root.display_name()
                    ),
                ));
            }
        };
        let mut out = Map::new();
        out.insert(
            "type".into(),
            Value::String(if query { "EPCISQueryDocument" } else { "EPCISDocument" }.into()),
        );
        for name in ["schemaVersion", "creationDate"] {
            if let Some(v) = root.attribute(name) {
                out.insert(name.into(), Value::String(v.trim().to_owned()));
            }
        }
        let mut body = Map::new();
        let mut results = Map::new();
        for child in root.flat_children() {
            match child.namespace {
                Some(_) => self.foreign(child, &mut out)?,
                None => match child.local.as_str() {
                    "EPCISHeader" => {}
                    "EPCISBody" => self.body(child, &mut body, &mut results)?,
                    // Some query documents put the results at the root.
                    "queryName" | "subscriptionID" | "resultsBody" if query => {
                        self.query_results_member(child, &mut results)?;
                    }
                    _ => return Err(self.unexpected(child, root)),
                },
            }
        }
        if !results.is_empty() {
            body.insert("queryResults".into(), Value::Object(results));
        }
        out.insert("epcisBody".into(), Value::Object(body));
        out.insert("@context".into(), self.context());
        Ok(Value::Object(out))
    }

    fn unexpected(&self, e: &Element, parent: &Element) -> XmlError {
        self.unsupported(
            e,
            format!(
                "element {} is not part of EPCIS 2.0 inside {}",
                e.display_name(),
                parent.display_name()
            ),
        )
    }

    /// A user element outside events: `ignoreFields` lists element names,
    /// anything else is kept as an extension.
    fn foreign(&mut self, e: &Element, into: &mut Map<String, Value>) -> Result<(), XmlError> {
        let key = self.element_key(e);
        let value = if e.local == "ignoreFields" {
            let names = e.children.iter().map(|c| Value::String(self.element_key(c))).collect();
            Value::Array(names)
        } else {
            self.generic(e)?
        };
        insert_repeated(into, key, value);
        Ok(())
    }

    fn body(
        &mut self,
        e: &Element,
        body: &mut Map<String, Value>,
        results: &mut Map<String, Value>,
    ) -> Result<(), XmlError> {
        for child in e.flat_children() {
            match child.namespace {
                Some(_) => self.foreign(child, body)?,
                None => match child.local.as_str() {
                    "EventList" => {
                        body.insert("eventList".into(), self.event_list(child)?);
                    }
                    "QueryResults" => {
                        for member in child.flat_children() {
                            match member.namespace {
                                Some(_) => self.foreign(member, results)?,
                                None => self.query_results_member(member, results)?,
                            }
                        }
                    }
                    "VocabularyList" => {}
                    _ => return Err(self.unexpected(child, e)),
                },
            }
        }
        Ok(())
    }

    fn query_results_member(&mut self, e: &Element, results: &mut Map<String, Value>) -> Result<(), XmlError> {
        match e.local.as_str() {
            "queryName" | "subscriptionID" => {
                results.insert(e.local.clone(), Value::String(e.text()));
            }
            "resultsBody" => {
                let mut body = Map::new();
                for child in e.flat_children() {
                    match (child.namespace.is_some(), child.local.as_str()) {
                        (true, _) => self.foreign(child, &mut body)?,
                        (false, "EventList") => {
                            body.insert("eventList".into(), self.event_list(child)?);
                        }
                        (false, "VocabularyList") => {}
                        _ => return Err(self.unexpected(child, e)),
                    }
                }
                results.insert("resultsBody".into(), Value::Object(body));
            }
            _ => {
                return Err(self.unsupported(
                    e,
                    format!("element {} is not part of EPCIS query results", e.display_name()),
                ));
            }
        }
        Ok(())
    }

    fn event_list(&mut self, e: &Element) -> Result<Value, XmlError> {
        let mut events = Vec::new();
        for child in e.flat_children() {
            if child.namespace.is_none() && EVENT_TYPES.contains(&child.local.as_str()) {
                events.push(self.event(child)?);
            } else {
                return Err(self.unsupported(
                    child,
                    format!(
                        "{} is not an EPCIS event type ({})",
                        child.display_name(),
                        EVENT_TYPES.join(", ")
                    ),
                ));
            }
        }
        Ok(Value::Array(events))
    }

    fn event(&mut self, e: &Element) -> Result<Value, XmlError> {
        let mut out = Map::new();
        out.insert("type".into(), Value::String(e.local.clone()));
        for child in e.flat_children() {
            if child.namespace.is_some() {
                let key = self.element_key(child);
                let value = self.generic(child)?;
                insert_repeated(&mut out, key, value);
                continue;
            }
            let value = match child.local.as_str() {
                "eventTime"
                | "recordTime"
                | "eventTimeZoneOffset"
                | "eventID"
                | "parentID"
                | "action"
                | "transformationID" => Value::String(self.leaf(child)?),
                "certificationInfo" => {
                    let value = Value::String(self.leaf(child)?);
                    insert_repeated(&mut out, "certificationInfo".into(), value);
                    continue;
                }
                "bizStep" => Value::String(cbv_short_name(&self.leaf(child)?, "bizstep", "BizStep")),
                "disposition" => Value::String(cbv_short_name(&self.leaf(child)?, "disp", "Disp")),
                "epcList" | "childEPCs" | "inputEPCList" | "outputEPCList" => self.epcs(child)?,
                "quantityList" | "childQuantityList" | "inputQuantityList" | "outputQuantityList" => {
                    self.quantities(child)?
                }
                "readPoint" | "bizLocation" => self.location(child)?,
                "bizTransactionList" => self.typed_list(child, "bizTransaction", ("btt", "BTT"))?,
                "sourceList" => self.typed_list(child, "source", ("sdt", "SDT"))?,
                "destinationList" => self.typed_list(child, "destination", ("sdt", "SDT"))?,
                "persistentDisposition" => self.persistent_disposition(child)?,
                "sensorElementList" => self.sensor_elements(child)?,
                "errorDeclaration" => self.error_declaration(child)?,
                "ilmd" => self.extension_object(child)?,
                _ => return Err(self.unexpected(child, e)),
            };
            // 1.2 wrappers can repeat a list the event already has.
            match (out.get_mut(&child.local), value) {
                (Some(Value::Array(have)), Value::Array(more)) => have.extend(more),
                (_, value) => {
                    out.insert(child.local.clone(), value);
                }
            }
        }
        Ok(Value::Object(out))
    }

    /// The text of an element that may hold nothing else.
    fn leaf(&self, e: &Element) -> Result<String, XmlError> {
        if let Some(child) = e.children.first() {
            return Err(self.unexpected(child, e));
        }
        Ok(e.text())
    }

    fn only_children<'e>(&self, e: &'e Element, name: &str) -> Result<Vec<&'e Element>, XmlError> {
        self.no_text(e)?;
        let children = e.flat_children();
        if let Some(other) = children.iter().find(|c| !c.is(name)) {
            return Err(self.unexpected(other, e));
        }
        Ok(children)
    }

    fn no_text(&self, e: &Element) -> Result<(), XmlError> {
        if e.text.trim().is_empty() {
            Ok(())
        } else {
            Err(self.unsupported(
                e,
                format!("text directly inside {}, which holds elements", e.display_name()),
            ))
        }
    }

    fn epcs(&self, e: &Element) -> Result<Value, XmlError> {
        let epcs = self.only_children(e, "epc")?;
        epcs.into_iter()
            .map(|epc| self.leaf(epc).map(Value::String))
            .collect::<Result<_, _>>()
            .map(Value::Array)
    }

    fn quantities(&self, e: &Element) -> Result<Value, XmlError> {
        let mut out = Vec::new();
        for q in self.only_children(e, "quantityElement")? {
            self.no_text(q)?;
            let mut map = Map::new();
            for part in q.flat_children() {
                let value = match part.local.as_str() {
                    "epcClass" | "uom" if part.namespace.is_none() => Value::String(self.leaf(part)?),
                    "quantity" if part.namespace.is_none() => decimal(self.leaf(part)?),
                    _ => return Err(self.unexpected(part, q)),
                };
                map.insert(part.local.clone(), value);
            }
            out.push(Value::Object(map));
        }
        Ok(Value::Array(out))
    }

    fn location(&mut self, e: &Element) -> Result<Value, XmlError> {
        self.no_text(e)?;
        let mut map = Map::new();
        for child in e.flat_children() {
            if child.is("id") {
                map.insert("id".into(), Value::String(self.leaf(child)?));
            } else if child.namespace.is_some() {
                let key = self.element_key(child);
                let value = self.generic(child)?;
                insert_repeated(&mut map, key, value);
            } else {
                return Err(self.unexpected(child, e));
            }
        }
        Ok(Value::Object(map))
    }

    /// Business transactions, sources, destinations: the text is the ID,
    /// the `type` attribute a CBV term.
    fn typed_list(&self, e: &Element, item: &str, (urn, web): (&str, &str)) -> Result<Value, XmlError> {
        let mut out = Vec::new();
        for member in self.only_children(e, item)? {
            let mut map = Map::new();
            if let Some(kind) = member.attribute("type") {
                map.insert("type".into(), Value::String(cbv_short_name(kind, urn, web)));
            }
            if let Some(other) = member
                .attributes
                .iter()
                .find(|a| a.namespace.is_some() || a.local != "type")
            {
                return Err(self.unsupported(
                    member,
                    format!("attribute {:?} on {}", other.local, member.display_name()),
                ));
            }
            map.insert(item.into(), Value::String(self.leaf(member)?));
            out.push(Value::Object(map));
        }
        Ok(Value::Array(out))
    }

    fn persistent_disposition(&self, e: &Element) -> Result<Value, XmlError> {
        self.no_text(e)?;
        let mut lists: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for child in e.flat_children() {
            if !(child.is("set") || child.is("unset")) {
                return Err(self.unexpected(child, e));
            }
            let value = Value::String(cbv_short_name(&self.leaf(child)?, "disp", "Disp"));
            lists.entry(child.local.clone()).or_default().push(value);
        }
        Ok(Value::Object(
            lists.into_iter().map(|(k, v)| (k, Value::Array(v))).collect(),
        ))
    }

    fn sensor_elements(&mut self, e: &Element) -> Result<Value, XmlError> {
        let mut out = Vec::new();
        for element in self.only_children(e, "sensorElement")? {
            self.no_text(element)?;
            let mut map = Map::new();
            let mut reports = Vec::new();
            for child in element.flat_children() {
                if child.is("sensorMetadata") {
                    map.insert("sensorMetadata".into(), self.sensor_attributes(child, false)?);
                } else if child.is("sensorReport") {
                    reports.push(self.sensor_attributes(child, true)?);
                } else if child.namespace.is_some() {
                    let key = self.element_key(child);
                    let value = self.generic(child)?;
                    insert_repeated(&mut map, key, value);
                } else {
                    return Err(self.unexpected(child, element));
                }
            }
            if !reports.is_empty() {
                map.insert("sensorReport".into(), Value::Array(reports));
            }
            out.push(Value::Object(map));
        }
        Ok(Value::Array(out))
    }

    /// Sensor metadata and reports carry their fields as attributes.
    fn sensor_attributes(&mut self, e: &Element, report: bool) -> Result<Value, XmlError> {
        let mut map = Map::new();
        for a in &e.attributes {
            let key = self.key(a.namespace.as_deref(), a.prefix.as_deref(), &a.local);
            let value = match (report, a.namespace.is_some(), a.local.as_str()) {
                (true, false, name) if DECIMAL_ATTRIBUTES.contains(&name) => decimal(a.value.trim().to_owned()),
                (true, false, "booleanValue") => match a.value.trim() {
                    "true" | "1" => Value::Bool(true),
                    "false" | "0" => Value::Bool(false),
                    other => Value::String(other.to_owned()),
                },
                (true, false, "type" | "exception") => {
                    let v = a.value.trim();
                    Value::String(match v.strip_prefix("https://gs1.org/voc/") {
                        Some(term) => format!("gs1:{term}"),
                        None => v.to_owned(),
                    })
                }
                _ => Value::String(a.value.trim().to_owned()),
            };
            map.insert(key, value);
        }
        self.user_elements(e, &mut map)?;
        Ok(Value::Object(map))
    }

    fn error_declaration(&mut self, e: &Element) -> Result<Value, XmlError> {
        self.no_text(e)?;
        let mut map = Map::new();
        for child in e.flat_children() {
            if child.namespace.is_some() {
                let key = self.element_key(child);
                let value = self.generic(child)?;
                insert_repeated(&mut map, key, value);
                continue;
            }
            let value = match child.local.as_str() {
                "declarationTime" => Value::String(self.leaf(child)?),
                "reason" => Value::String(cbv_short_name(&self.leaf(child)?, "er", "ER")),
                "correctiveEventIDs" => Value::Array(
                    self.only_children(child, "correctiveEventID")?
                        .into_iter()
                        .map(|id| self.leaf(id).map(Value::String))
                        .collect::<Result<_, _>>()?,
                ),
                _ => return Err(self.unexpected(child, e)),
            };
            map.insert(child.local.clone(), value);
        }
        Ok(Value::Object(map))
    }

    /// `ilmd`: user elements only.
    fn extension_object(&mut self, e: &Element) -> Result<Value, XmlError> {
        self.no_text(e)?;
        let mut map = Map::new();
        self.user_elements(e, &mut map)?;
        Ok(Value::Object(map))
    }

    /// Adds `e`'s children to `map` as user extensions; a child outside
    /// any namespace is not one.
    fn user_elements(&mut self, e: &Element, map: &mut Map<String, Value>) -> Result<(), XmlError> {
        for child in e.flat_children() {
            if child.namespace.is_none() {
                return Err(self.unexpected(child, e));
            }
            let key = self.element_key(child);
            let value = self.generic(child)?;
            insert_repeated(map, key, value);
        }
        Ok(())
    }

    /// A user extension element: its text, or an object of its attributes
    /// and children (repeated children as arrays). Unqualified names inside
    /// an extension are the extension's own and stay bare.
    fn generic(&mut self, e: &Element) -> Result<Value, XmlError> {
        if e.children.is_empty() && e.attributes.is_empty() {
            return Ok(Value::String(e.text()));
        }
        self.no_text(e)?;
        let mut map = Map::new();
        for a in &e.attributes {
            let key = self.key(a.namespace.as_deref(), a.prefix.as_deref(), &a.local);
            map.insert(key, Value::String(a.value.trim().to_owned()));
        }
        for child in &e.children {
            let key = self.element_key(child);
            let value = self.generic(child)?;
            insert_repeated(&mut map, key, value);
        }
        Ok(Value::Object(map))
    }
}

/// Inserts `value` under `key`, turning a repeated key into an array.
fn insert_repeated(map: &mut Map<String, Value>, key: String, value: Value) {
    match map.get_mut(&key) {
        None => {
            map.insert(key, value);
        }
        // Extension values are never arrays themselves: an array is a
        // repetition.
        Some(Value::Array(list)) => list.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}

/// A number as JSON has it; text that is no number stays text, for the
/// schema to report.
fn decimal(text: String) -> Value {
    if let Ok(n) = text.parse::<i64>() {
        return Value::Number(n.into());
    }
    match text.parse::<f64>().ok().and_then(Number::from_f64) {
        Some(n)
            if text
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E')) =>
        {
            Value::Number(n)
        }
        _ => Value::String(text),
    }
}
