//! Excel metadata through calamine: typing, merged cells, headers, keys, bad files.

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

use crate::harness::{Fixture, TWO_SPECS, nested_units};

fn recipe(f: &Fixture, options: &str) {
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\nvalidation: {{invalid_units: skip}}\nmetadata:\n  - excel: meta.xlsx\n{options}"));
}

/// The JSON plan, and what went wrong: stderr, and under `--format json`
/// the error document (its messages, codes and labels) from stdout.
fn plan(f: &Fixture) -> (i32, serde_json::Value, String) {
    let out = f.run(&["plan", "r.yaml", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    let error = v.get("error").map(|e| e.to_string()).unwrap_or_default();
    (out.code, v, format!("{}{error}", out.stderr))
}

#[test]
fn cells_convert_losslessly_and_declared_types_are_enforced() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet().set_name("Sheet1").unwrap();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm");
    for (c, h) in ["id", "age", "code", "when", "ratio", "ok", "", "visit"]
        .iter()
        .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    ws.write_string(1, 0, "u000").unwrap();
    ws.write_number(1, 1, 45.0).unwrap();
    ws.write_string(1, 2, "0042").unwrap();
    ws.write_datetime_with_format(1, 3, ExcelDateTime::from_ymd(2024, 3, 1).unwrap(), &date)
        .unwrap();
    ws.write_number(1, 4, 0.25).unwrap();
    ws.write_boolean(1, 5, true).unwrap();
    ws.write_string(1, 6, "blank header").unwrap();
    ws.write_datetime_with_format(
        1,
        7,
        ExcelDateTime::parse_from_str("2024-03-01T08:30:00").unwrap(),
        &datetime,
    )
    .unwrap();
    // u001: a merged block gives both rows the same `code`.
    ws.write_string(2, 0, "u001").unwrap();
    ws.write_string(3, 0, "u002").unwrap();
    ws.merge_range(2, 2, 3, 2, "A-7", &Format::new()).unwrap();
    ws.write_string(2, 1, "forty").unwrap();
    ws.write_number(3, 3, 1.5).unwrap();
    wb.save(f.join("meta.xlsx")).unwrap();
    recipe(
        &f,
        "    columns: {age: integer, when: date, code: string}\n",
    );
    let (code, plan, stderr) = plan(&f);
    assert_eq!(code, 0, "{stderr}");
    let m0 = &plan["units"][0]["meta"];
    assert_eq!(m0["age"], 45);
    assert_eq!(m0["code"], "0042");
    assert_eq!(m0["when"], "2024-03-01");
    assert_eq!(m0["ratio"], 0.25);
    assert_eq!(m0["ok"], true);
    assert_eq!(m0["column_G"], "blank header");
    assert_eq!(m0["visit"], "2024-03-01T08:30:00");
    assert_eq!(plan["units"][1]["meta"]["code"], "A-7");
    assert_eq!(
        plan["units"][2]["meta"]["code"], "A-7",
        "merged cells take the top-left value"
    );
    // Declared types that do not convert make the unit invalid, with provenance.
    assert_eq!(plan["units"][1]["action"], "invalid");
    let p = &plan["units"][1]["problems"][0];
    assert_eq!(p["reason"], "metadata_type");
    assert_eq!(p["source"], "meta.xlsx!Sheet1!B3");
    assert_eq!(
        plan["units"][2]["problems"][0]["source"],
        "meta.xlsx!Sheet1!D4"
    );
}

#[test]
fn meta_schema_errors_carry_pointer_and_cell() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "id").unwrap();
    ws.write_string(0, 1, "age").unwrap();
    ws.write_string(1, 0, "u000").unwrap();
    ws.write_number(1, 1, 300.0).unwrap();
    wb.save(f.join("meta.xlsx")).unwrap();
    f.write("r.yaml", format!("{TWO_SPECS}  data_unit_meta_schema: {{properties: {{age: {{maximum: 120}}}}}}\nsource: {{path: data}}\nmetadata:\n  - excel: meta.xlsx\n"));
    let (code, plan, _) = plan(&f);
    assert_eq!(code, 3);
    let p = &plan["units"][0]["problems"][0];
    assert_eq!(p["reason"], "meta_schema");
    assert_eq!(p["pointer"], "/age");
    assert_eq!(p["source"], "meta.xlsx!Sheet1!B2");
}

#[test]
fn duplicate_keys_and_headers_are_plan_errors() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    for (r, k) in ["id", "u000", "u000", "u001"].iter().enumerate() {
        ws.write_string(r as u32, 0, *k).unwrap();
    }
    wb.save(f.join("meta.xlsx")).unwrap();
    recipe(&f, "");
    let (code, _, stderr) = plan(&f);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("synup::plan::metadata_sheet") && stderr.contains("`u000` in rows 2, 3"),
        "{stderr}"
    );

    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "id").unwrap();
    ws.write_string(0, 1, "id").unwrap();
    wb.save(f.join("meta.xlsx")).unwrap();
    let (code, _, stderr) = plan(&f);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("header `id` appears in columns A, B"),
        "{stderr}"
    );
}

#[test]
fn missing_sheet_header_row_and_key_column() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(3, 0, "late").unwrap();
    wb.save(f.join("meta.xlsx")).unwrap();
    recipe(&f, "");
    let (code, _, stderr) = plan(&f);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("row 1, the header row, is empty"),
        "{stderr}"
    );
    recipe(&f, "    sheet: Nope\n");
    let (_, _, stderr) = plan(&f);
    assert!(
        stderr.contains("there is no sheet `Nope` (sheets: Sheet1)"),
        "{stderr}"
    );
    recipe(&f, "    header_row: 4\n    key_column: patient\n");
    let (_, _, stderr) = plan(&f);
    assert!(stderr.contains("there is no column `patient`"), "{stderr}");
}

#[test]
fn corrupt_and_password_protected_workbooks_are_explained() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    f.write("meta.xlsx", "this is not a zip file at all");
    recipe(&f, "");
    let (code, _, stderr) = plan(&f);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("synup::plan::metadata_sheet")
            && stderr.contains("cannot read spreadsheet"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));

    // An encrypted OOXML file is a compound file with an EncryptedPackage stream.
    let mut comp = cfb::create(f.join("meta.xlsx")).unwrap();
    {
        use std::io::Write;
        let mut s = comp.create_stream("/EncryptionInfo").unwrap();
        s.write_all(&[4, 0, 4, 0, 0x40, 0, 0, 0]).unwrap();
        let mut s = comp.create_stream("/EncryptedPackage").unwrap();
        s.write_all(&[0u8; 64]).unwrap();
    }
    comp.flush().unwrap();
    drop(comp);
    let (code, _, stderr) = plan(&f);
    assert_eq!(code, 1);
    assert!(stderr.contains("password-protected"), "{stderr}");
}

#[test]
fn a_sheet_with_100k_rows_works() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "id").unwrap();
    ws.write_string(0, 1, "n").unwrap();
    for r in 1..=100_000u32 {
        ws.write_string(r, 0, format!("u{:03}", r - 1)).unwrap();
        ws.write_number(r, 1, r as f64).unwrap();
    }
    wb.save(f.join("meta.xlsx")).unwrap();
    recipe(&f, "");
    let (code, plan, stderr) = plan(&f);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(plan["units"][2]["meta"]["n"], 3);
    assert_eq!(plan["orphan_rows"].as_array().unwrap().len(), 99_997);
}

/// A workbook with `age` for three units, saved over `meta.xlsx`.
fn ages_workbook(f: &Fixture, ages: [f64; 3]) {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "id").unwrap();
    ws.write_string(0, 1, "age").unwrap();
    for (i, age) in ages.iter().enumerate() {
        ws.write_string(i as u32 + 1, 0, format!("u{i:03}"))
            .unwrap();
        ws.write_number(i as u32 + 1, 1, *age).unwrap();
    }
    wb.save(f.join("meta.xlsx")).unwrap();
}

#[test]
fn a_parsed_sheet_is_cached_by_content_not_by_file_time() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    ages_workbook(&f, [1.0, 2.0, 3.0]);
    recipe(&f, "    columns: {age: integer}\n");
    let (code, first, stderr) = plan(&f);
    assert_eq!(code, 0, "{stderr}");
    let cached = f.join(".synup/cache/t.meta0.sheet");
    assert!(cached.is_file(), "the parsed sheet is kept");
    let (_, second, _) = plan(&f);
    assert_eq!(first, second, "the cached table plans the same");

    // Edited, with its old modification time put back: still read again.
    let mtime = std::fs::metadata(f.join("meta.xlsx"))
        .unwrap()
        .modified()
        .unwrap();
    ages_workbook(&f, [1.0, 2.0, 30.0]);
    let file = std::fs::File::options()
        .append(true)
        .open(f.join("meta.xlsx"))
        .unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    let (_, edited, _) = plan(&f);
    assert_eq!(edited["units"][2]["meta"]["age"], 30);

    // A damaged cache entry is rebuilt with a warning, never an error.
    std::fs::write(&cached, b"synup-sheet-v1\n\0 torn").unwrap();
    let (code, again, stderr) = plan(&f);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again["units"], edited["units"]);
    assert!(
        again["warnings"]
            .to_string()
            .contains("sheet_cache_rebuilt"),
        "{}",
        again["warnings"]
    );
    let (_, rebuilt, _) = plan(&f);
    assert_eq!(rebuilt, edited, "and is rewritten");
}

/// Rewrites an xlsx so its formulas carry no cached value, as files written
/// by openpyxl (and never opened in a spreadsheet application) are.
fn strip_cached_values(path: &std::path::Path) {
    use std::io::{Read, Write};
    let bytes = std::fs::read(path).unwrap();
    let mut zin = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let re = regex::Regex::new(r"</f><v>[^<]*</v>").unwrap();
    for i in 0..zin.len() {
        let mut entry = zin.by_index(i).unwrap();
        let name = entry.name().unwrap().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if name.starts_with("xl/worksheets/") {
            let text = String::from_utf8(data).unwrap();
            data = re.replace_all(&text, "</f>").into_owned().into_bytes();
        }
        out.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(&data).unwrap();
    }
    std::fs::write(path, out.finish().unwrap().into_inner()).unwrap();
}

#[test]
fn a_formula_without_a_cached_value_is_a_type_error_at_its_cell() {
    let f = Fixture::new();
    nested_units(&f, "data", 2);
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "id").unwrap();
    ws.write_string(0, 1, "age").unwrap();
    ws.write_string(0, 2, "twice").unwrap();
    for (r, id) in ["u000", "u001"].iter().enumerate() {
        let r = r as u32 + 1;
        ws.write_string(r, 0, *id).unwrap();
        ws.write_number(r, 1, 40.0).unwrap();
        ws.write_formula(r, 2, format!("=B{}*2", r + 1).as_str())
            .unwrap();
    }
    wb.save(f.join("meta.xlsx")).unwrap();
    strip_cached_values(&f.join("meta.xlsx"));
    recipe(&f, "");
    let (code, plan, stderr) = plan(&f);
    assert_eq!(code, 0, "{stderr}");
    let p = &plan["units"][0]["problems"][0];
    assert_eq!(p["reason"], "metadata_type", "{plan:#}");
    assert_eq!(p["source"], "meta.xlsx!Sheet1!C2", "{plan:#}");
    assert!(p["message"].as_str().unwrap().contains("=B2*2"), "{plan:#}");
    assert_eq!(plan["units"][0]["action"], "invalid");
    assert_eq!(plan["units"][0]["meta"]["age"], 40);
}

fn csv_recipe(f: &Fixture, options: &str) {
    f.write(
        "r.yaml",
        format!("{TWO_SPECS}source: {{path: data}}\nmetadata:\n  - csv: meta.csv\n{options}"),
    );
}

#[test]
fn csv_delimiters_are_sniffed_or_given() {
    for (sep, name) in [
        (";", "semicolon"),
        ("\t", "tab"),
        ("|", "pipe"),
        (",", "comma"),
    ] {
        let f = Fixture::new();
        nested_units(&f, "data", 2);
        f.write(
            "meta.csv",
            format!("id{sep}site{sep}note\nu000{sep}Seoul{sep}\"a{sep}b\"\nu001{sep}Busan{sep}x\n"),
        );
        csv_recipe(&f, "");
        let (code, planned, stderr) = plan(&f);
        assert_eq!(code, 0, "{name}: {stderr}");
        assert_eq!(
            planned["units"][0]["meta"]["site"], "Seoul",
            "{name}: {planned:#}"
        );
        assert_eq!(
            planned["units"][0]["meta"]["note"],
            format!("a{sep}b"),
            "{name}"
        );
    }
    // Given explicitly: a header without the separator still splits.
    let f = Fixture::new();
    nested_units(&f, "data", 1);
    f.write("meta.csv", "id\nu000;x\n");
    csv_recipe(&f, "    delimiter: \";\"\n");
    let (code, planned, stderr) = plan(&f);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(planned["units"][0]["meta"]["id"], "u000", "{planned:#}");
    let f = Fixture::new();
    nested_units(&f, "data", 1);
    f.write("meta.csv", "id\tsite\nu000\tx\n");
    csv_recipe(&f, "    delimiter: tab\n");
    let (code, planned, stderr) = plan(&f);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(planned["units"][0]["meta"]["site"], "x", "{planned:#}");
    // A bad delimiter is a recipe error at its value.
    csv_recipe(&f, "    delimiter: \";;\"\n");
    let out = f.run(&["validate", "r.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("`;;` is not a CSV delimiter"),
        "{}",
        out.stderr
    );
}

#[test]
fn latin1_csv_names_its_encoding_problem_and_reads_with_encoding() {
    let f = Fixture::new();
    nested_units(&f, "data", 2);
    // "Café" and "Zürich" in Latin-1 / Windows-1252.
    let mut bytes = b"id;site\nu000;Caf".to_vec();
    bytes.push(0xE9);
    bytes.extend_from_slice(b"\nu001;Z");
    bytes.push(0xFC);
    bytes.extend_from_slice(b"rich\n");
    std::fs::write(f.join("meta.csv"), &bytes).unwrap();
    csv_recipe(&f, "");
    let out = f.run(&["plan", "r.yaml"]);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr
            .contains("is not UTF-8: line 2 holds the byte 0xE9"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("encoding: latin-1"), "{}", out.stderr);
    for label in ["latin-1", "windows-1252", "ISO-8859-1"] {
        csv_recipe(&f, &format!("    encoding: {label}\n"));
        let (code, planned, stderr) = plan(&f);
        assert_eq!(code, 0, "{label}: {stderr}");
        assert_eq!(planned["units"][0]["meta"]["site"], "Café", "{label}");
        assert_eq!(planned["units"][1]["meta"]["site"], "Zürich", "{label}");
    }
    csv_recipe(&f, "    encoding: klingon\n");
    let out = f.run(&["validate", "r.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("`klingon` is not a text encoding"),
        "{}",
        out.stderr
    );
    // A UTF-8 BOM is fine without `encoding`.
    f.write("meta.csv", "\u{feff}id,site\nu000,Seoul\n");
    csv_recipe(&f, "");
    let (code, planned, stderr) = plan(&f);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(planned["units"][0]["meta"]["site"], "Seoul");
}
