//! Writes the spreadsheet used by `pipelines/07-all-metadata.yaml`.
//! Run with `cargo run --example make_pipeline_fixtures` (the file is committed).

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut wb = Workbook::new();
    let sheet = wb.add_worksheet().set_name("Patients")?;
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (c, h) in ["patient_id", "age", "scan_date", "diagnosis"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, c as u16, *h)?;
    }
    let rows = [
        ("P001", 45, (2024, 3, 1), "normal"),
        ("P002", 52, (2024, 3, 2), "nodule"),
        ("P003", 38, (2024, 3, 5), "normal"),
        ("P004", 61, (2024, 3, 9), "pending"),
    ];
    for (r, (id, age, (y, m, d), diag)) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        sheet.write_string(r, 0, *id)?;
        sheet.write_number(r, 1, *age as f64)?;
        sheet.write_datetime_with_format(r, 2, ExcelDateTime::from_ymd(*y, *m, *d)?, &date)?;
        sheet.write_string(r, 3, *diag)?;
    }
    wb.save("pipelines/data/07-metadata/meta.xlsx")?;
    Ok(())
}
