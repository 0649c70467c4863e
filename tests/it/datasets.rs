//! Public datasets' real layouts (SPEC 2.1–2.2, 3): skeleton trees with the
//! file and folder names their distributions use, each planned twice — with
//! the recipe a user writes from the dataset's documentation, and with
//! `synup explore`'s suggested recipe taken verbatim. Both must give the
//! dataset's units. Explore's text output is snapshotted per dataset.

use serde_json::Value as Json;

use crate::harness::Fixture;

/// A dataset's skeleton and what planning it must give.
struct Dataset {
    /// Relative to the source root.
    files: Vec<String>,
    /// Written into the user's recipe under `collection:` and after `source:`.
    specs: &'static str,
    rules: &'static str,
    /// Unit keys, sorted.
    units: Vec<String>,
    /// Files the junk list (macOS companions and the like) and `exclude` drop.
    excluded: u64,
    /// Files with real content (sheets), by relative path.
    contents: Vec<(String, String)>,
}

fn keys(v: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().collect();
    v.sort();
    v
}

/// BraTS 2021 (brain MRI): a folder per case, one NIfTI file per modality
/// (`_flair`, `_t1`, `_t1ce`, `_t2`, `_seg`), a survival sheet at the root.
fn brats2021() -> Dataset {
    let cases: Vec<String> = (0..6).map(|i| format!("BraTS2021_{:05}", i * 2)).collect();
    let mut files = vec!["survival_info.csv".to_owned()];
    for c in &cases {
        for m in ["flair", "t1", "t1ce", "t2", "seg"] {
            files.push(format!("{c}/{c}_{m}.nii.gz"));
        }
    }
    Dataset {
        files,
        specs: "    - {name: flair, file_type: medical, extensions: [.nii.gz], is_required: true, is_primary: true}
    - {name: t1, file_type: medical, extensions: [.nii.gz], is_required: true}
    - {name: t1ce, file_type: medical, extensions: [.nii.gz], is_required: true}
    - {name: t2, file_type: medical, extensions: [.nii.gz], is_required: true}
    - {name: seg, file_type: medical, extensions: [.nii.gz], is_required: true}
",
        rules: "file_rules:
  - {pattern: '**/*_flair.nii.gz', spec: flair}
  - {pattern: '**/*_t1.nii.gz', spec: t1}
  - {pattern: '**/*_t1ce.nii.gz', spec: t1ce}
  - {pattern: '**/*_t2.nii.gz', spec: t2}
  - {pattern: '**/*_seg.nii.gz', spec: seg}
",
        contents: vec![(
            "survival_info.csv".to_owned(),
            std::iter::once("Brats21ID,Age,Survival_days\n".to_owned())
                .chain(cases.iter().take(4).map(|c| format!("{c},60.5,289\n")))
                .collect(),
        )],
        units: keys(cases),
        excluded: 0,
    }
}

/// Medical Segmentation Decathlon, Task01 (shipped from a Mac): `imagesTr/`,
/// `labelsTr/`, `imagesTs/`, `dataset.json`, and an AppleDouble `._` file
/// beside every image.
fn msd_task01_brain_tumour() -> Dataset {
    let mut files = vec!["dataset.json".to_owned()];
    let mut units = Vec::new();
    let mut junk = 0;
    for i in 1..=6 {
        let c = format!("BRATS_{i:03}");
        for dir in ["imagesTr", "labelsTr"] {
            files.push(format!("{dir}/{c}.nii.gz"));
            files.push(format!("{dir}/._{c}.nii.gz"));
            junk += 1;
        }
        units.push(c);
    }
    for i in 485..=487 {
        let c = format!("BRATS_{i:03}");
        files.push(format!("imagesTs/{c}.nii.gz"));
        files.push(format!("imagesTs/._{c}.nii.gz"));
        junk += 1;
        units.push(c);
    }
    Dataset {
        files,
        specs: "    - {name: image, file_type: medical, extensions: [.nii.gz], is_required: true, is_primary: true}
    - {name: label, file_type: medical, extensions: [.nii.gz], is_required: false}
",
        rules: "file_rules:
  - {pattern: 'imagesT*/*.nii.gz', spec: image}
  - {pattern: 'labelsTr/*.nii.gz', spec: label}
",
        units: keys(units),
        excluded: junk,
        contents: Vec::new(),
    }
}

/// nnU-Net raw data: channels as `_0000`…`_0003`, labels without a suffix.
fn nnunet_dataset001() -> Dataset {
    let mut files = vec!["Dataset001_BrainTumour/dataset.json".to_owned()];
    let mut units = Vec::new();
    for (dir, range) in [("imagesTr", 1..=6), ("imagesTs", 485..=486)] {
        for i in range {
            let c = format!("BRATS_{i:03}");
            for ch in 0..4 {
                files.push(format!("Dataset001_BrainTumour/{dir}/{c}_{ch:04}.nii.gz"));
            }
            if dir == "imagesTr" {
                files.push(format!("Dataset001_BrainTumour/labelsTr/{c}.nii.gz"));
            }
            units.push(c);
        }
    }
    Dataset {
        files,
        specs: "    - {name: flair, file_type: medical, extensions: [.nii.gz], is_required: true, is_primary: true}
    - {name: t1w, file_type: medical, extensions: [.nii.gz], is_required: true}
    - {name: t1gd, file_type: medical, extensions: [.nii.gz], is_required: true}
    - {name: t2w, file_type: medical, extensions: [.nii.gz], is_required: true}
    - {name: label, file_type: medical, extensions: [.nii.gz], is_required: false}
",
        rules: "file_rules:
  - {pattern: '**/images*/*_0000.nii.gz', spec: flair}
  - {pattern: '**/images*/*_0001.nii.gz', spec: t1w}
  - {pattern: '**/images*/*_0002.nii.gz', spec: t1gd}
  - {pattern: '**/images*/*_0003.nii.gz', spec: t2w}
  - {pattern: '**/labelsTr/*.nii.gz', spec: label}
",
        units: keys(units),
        excluded: 0,
        contents: Vec::new(),
    }
}

/// ISIC 2018 (dermoscopy): inputs and masks in sibling folders, the mask
/// named `<id>_segmentation.png`, licence files in each folder.
fn isic2018_task1() -> Dataset {
    let ids: Vec<String> = [0, 1, 3, 4, 6, 9, 12]
        .iter()
        .map(|i| format!("ISIC_{:07}", i))
        .collect();
    let mut files = Vec::new();
    for d in [
        "ISIC2018_Task1-2_Training_Input",
        "ISIC2018_Task1_Training_GroundTruth",
    ] {
        files.push(format!("{d}/LICENSE.txt"));
        files.push(format!("{d}/ATTRIBUTION.txt"));
    }
    for id in &ids {
        files.push(format!("ISIC2018_Task1-2_Training_Input/{id}.jpg"));
        files.push(format!(
            "ISIC2018_Task1_Training_GroundTruth/{id}_segmentation.png"
        ));
    }
    Dataset {
        files,
        specs: "    - {name: image, file_type: image, extensions: [.jpg], is_required: true, is_primary: true}
    - {name: mask, file_type: image, extensions: [.png], is_required: true}
",
        rules: "",
        units: keys(ids),
        excluded: 0,
        contents: Vec::new(),
    }
}

/// KITTI object detection: a `training/` wrapper above type folders.
fn kitti_object() -> Dataset {
    let ids: Vec<String> = (0..6).map(|i| format!("{i:06}")).collect();
    let mut files = Vec::new();
    for id in &ids {
        files.push(format!("training/image_2/{id}.png"));
        files.push(format!("training/label_2/{id}.txt"));
        files.push(format!("training/calib/{id}.txt"));
        files.push(format!("training/velodyne/{id}.bin"));
    }
    Dataset {
        files,
        specs: "    - {name: image_2, file_type: image, extensions: [.png], is_required: true, is_primary: true}
    - {name: label_2, file_type: text, extensions: [.txt], is_required: true}
    - {name: calib, file_type: text, extensions: [.txt], is_required: true}
    - {name: velodyne, file_type: pcd, extensions: [.bin], is_required: true}
",
        rules: "file_rules:
  - {pattern: '**/image_2/*', spec: image_2}
  - {pattern: '**/label_2/*', spec: label_2}
  - {pattern: '**/calib/*', spec: calib}
  - {pattern: '**/velodyne/*', spec: velodyne}
",
        units: keys(ids),
        excluded: 0,
        contents: Vec::new(),
    }
}

/// Cityscapes (fine annotations): split and city folders, specs told apart
/// by name suffixes (`_leftImg8bit`, `_gtFine_labelIds`, …).
fn cityscapes() -> Dataset {
    let mut files = vec!["license.txt".to_owned(), "README".to_owned()];
    let mut units = Vec::new();
    for (split, city, seqs) in [
        ("train", "aachen", 0..3),
        ("train", "bochum", 0..2),
        ("val", "frankfurt", 0..2),
    ] {
        for s in seqs {
            let key = format!("{city}_{s:06}_000019");
            files.push(format!("leftImg8bit/{split}/{city}/{key}_leftImg8bit.png"));
            for kind in [
                "color.png",
                "instanceIds.png",
                "labelIds.png",
                "polygons.json",
            ] {
                files.push(format!("gtFine/{split}/{city}/{key}_gtFine_{kind}"));
            }
            units.push(key);
        }
    }
    Dataset {
        files,
        specs: "    - {name: image, file_type: image, extensions: [.png], is_required: true, is_primary: true}
    - {name: label_ids, file_type: image, extensions: [.png], is_required: true}
    - {name: instance_ids, file_type: image, extensions: [.png], is_required: true}
    - {name: color, file_type: image, extensions: [.png], is_required: false}
    - {name: polygons, file_type: document, extensions: [.json], is_required: true}
",
        rules: "file_rules:
  - {pattern: '**/*_leftImg8bit.png', spec: image}
  - {pattern: '**/*_gtFine_labelIds.png', spec: label_ids}
  - {pattern: '**/*_gtFine_instanceIds.png', spec: instance_ids}
  - {pattern: '**/*_gtFine_color.png', spec: color}
  - {pattern: '**/*_gtFine_polygons.json', spec: polygons}
",
        units: keys(units),
        excluded: 0,
        contents: Vec::new(),
    }
}

/// PASCAL VOC 2012: type folders under `VOC2012/`, segmentation masks for a
/// subset, split lists under `ImageSets/`.
fn pascal_voc2012() -> Dataset {
    let ids: Vec<String> = [
        "2007_000027",
        "2007_000032",
        "2007_000033",
        "2007_000039",
        "2008_000002",
        "2008_000003",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut files = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        files.push(format!("VOC2012/JPEGImages/{id}.jpg"));
        files.push(format!("VOC2012/Annotations/{id}.xml"));
        if i % 2 == 1 {
            files.push(format!("VOC2012/SegmentationClass/{id}.png"));
            files.push(format!("VOC2012/SegmentationObject/{id}.png"));
        }
    }
    for list in ["train.txt", "val.txt", "trainval.txt"] {
        files.push(format!("VOC2012/ImageSets/Main/{list}"));
        files.push(format!("VOC2012/ImageSets/Segmentation/{list}"));
    }
    files.push("VOC2012/ImageSets/Main/aeroplane_train.txt".to_owned());
    Dataset {
        files,
        specs: "    - {name: image, file_type: image, extensions: [.jpg], is_required: true, is_primary: true}
    - {name: annotation, file_type: document, extensions: [.xml], is_required: true}
    - {name: class_mask, file_type: image, extensions: [.png], is_required: false}
    - {name: object_mask, file_type: image, extensions: [.png], is_required: false}
",
        rules: "exclude: ['**/ImageSets/**']
file_rules:
  - {pattern: '**/JPEGImages/*.jpg', spec: image}
  - {pattern: '**/Annotations/*.xml', spec: annotation}
  - {pattern: '**/SegmentationClass/*.png', spec: class_mask}
  - {pattern: '**/SegmentationObject/*.png', spec: object_mask}
",
        units: keys(ids),
        excluded: 7,
        contents: Vec::new(),
    }
}

/// Oxford-IIIT Pet, as downloaded: trimaps carry macOS `._` companions,
/// XML boxes exist for some images, lists sit in `annotations/`.
fn oxford_iiit_pet() -> Dataset {
    let mut files = vec![
        "annotations/list.txt".to_owned(),
        "annotations/trainval.txt".to_owned(),
        "annotations/test.txt".to_owned(),
        "annotations/README".to_owned(),
    ];
    let mut units = Vec::new();
    let mut junk = 0;
    for breed in ["Abyssinian", "Bombay", "beagle"] {
        for i in [1, 2, 3, 10] {
            let key = format!("{breed}_{i}");
            files.push(format!("images/{key}.jpg"));
            files.push(format!("annotations/trimaps/{key}.png"));
            files.push(format!("annotations/trimaps/._{key}.png"));
            junk += 1;
            if i < 3 {
                files.push(format!("annotations/xmls/{key}.xml"));
            }
            units.push(key);
        }
    }
    Dataset {
        files,
        specs: "    - {name: image, file_type: image, extensions: [.jpg], is_required: true, is_primary: true}
    - {name: trimap, file_type: image, extensions: [.png], is_required: true}
    - {name: bbox, file_type: document, extensions: [.xml], is_required: false}
",
        rules: "",
        units: keys(units),
        excluded: junk,
        contents: Vec::new(),
    }
}

/// ImageNet (ILSVRC, Kaggle layout): class folders, the class in each name,
/// a solution sheet at the root keyed by image id.
fn imagenet_ilsvrc() -> Dataset {
    let mut files = vec!["LOC_synset_mapping.txt".to_owned()];
    let mut units = Vec::new();
    let mut sheet = String::from("ImageId,PredictionString\n");
    for (class, ids) in [
        ("n01440764", [10026, 10027, 10029, 10040]),
        ("n01443537", [10007, 10014, 10025, 10032]),
        ("n01484850", [10036, 10048, 10061, 10062]),
    ] {
        for id in ids {
            let key = format!("{class}_{id}");
            files.push(format!("ILSVRC/Data/CLS-LOC/train/{class}/{key}.JPEG"));
            sheet.push_str(&format!("{key},{class} 1 2 3 4\n"));
            units.push(key);
        }
    }
    files.push("LOC_train_solution.csv".to_owned());
    Dataset {
        files,
        specs: "    - {name: image, file_type: image, extensions: [.JPEG], is_required: true, is_primary: true}
",
        rules: "",
        units: keys(units),
        excluded: 0,
        contents: vec![("LOC_train_solution.csv".to_owned(), sheet)],
    }
}

/// LibriSpeech: speaker/chapter folders, one FLAC per utterance (chapters
/// of different lengths), a transcript per chapter, notes at the root.
fn librispeech() -> Dataset {
    let mut files: Vec<String> = ["SPEAKERS.TXT", "CHAPTERS.TXT", "LICENSE.TXT", "README.TXT"]
        .iter()
        .map(|f| format!("LibriSpeech/{f}"))
        .collect();
    let mut units = Vec::new();
    for (speaker, chapter, n) in [(19, 198, 9), (19, 227, 3), (26, 495, 5), (32, 21625, 12)] {
        let dir = format!("LibriSpeech/train-clean-100/{speaker}/{chapter}");
        files.push(format!("{dir}/{speaker}-{chapter}.trans.txt"));
        for u in 0..n {
            let key = format!("{speaker}-{chapter}-{u:04}");
            files.push(format!("{dir}/{key}.flac"));
            units.push(key);
        }
    }
    Dataset {
        files,
        specs: "    - {name: audio, file_type: audio, extensions: [.flac], is_required: true, is_primary: true}
",
        rules: "",
        units: keys(units),
        excluded: 0,
        contents: Vec::new(),
    }
}

/// Speech Commands v0.02: one folder per word; a speaker's clip name recurs
/// across words, so only the path tells clips apart.
fn speech_commands() -> Dataset {
    let mut files: Vec<String> = [
        "validation_list.txt",
        "testing_list.txt",
        "LICENSE",
        "README.md",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut units = Vec::new();
    for (word, clips) in [
        (
            "yes",
            [
                "0a7c2a8d_nohash_0",
                "0b09edd3_nohash_0",
                "0c40e715_nohash_1",
                "0d2bcf9d_nohash_0",
            ],
        ),
        (
            "no",
            [
                "0a7c2a8d_nohash_0",
                "1a892463_nohash_0",
                "1b4c9b89_nohash_2",
                "1cb788bc_nohash_0",
            ],
        ),
        (
            "up",
            [
                "2aa787cf_nohash_0",
                "2b42e7a2_nohash_1",
                "2bdbe5f7_nohash_0",
                "2c6d3924_nohash_0",
            ],
        ),
    ] {
        for c in clips {
            files.push(format!("{word}/{c}.wav"));
            units.push(format!("{word}/{c}"));
        }
    }
    files.push("_background_noise_/white_noise.wav".to_owned());
    units.push("_background_noise_/white_noise".to_owned());
    Dataset {
        files,
        specs: "    - {name: audio, file_type: audio, extensions: [.wav], is_required: true, is_primary: true}
",
        rules: "",
        units: keys(units),
        excluded: 0,
        contents: Vec::new(),
    }
}

/// UCF101 (action recognition): a folder per class, `v_<Class>_gNN_cNN.avi`
/// with 4 to 7 clips per group, split lists beside.
fn ucf101() -> Dataset {
    let mut files = vec![
        "ucfTrainTestlist/classInd.txt".to_owned(),
        "ucfTrainTestlist/trainlist01.txt".to_owned(),
        "ucfTrainTestlist/testlist01.txt".to_owned(),
    ];
    let mut units = Vec::new();
    for (class, clips) in [
        ("ApplyEyeMakeup", [4, 5, 7]),
        ("Basketball", [4, 4, 6]),
        ("YoYo", [5, 4, 4]),
    ] {
        for (g, n) in clips.iter().enumerate() {
            for c in 1..=*n {
                let key = format!("v_{class}_g{:02}_c{c:02}", g + 1);
                files.push(format!("UCF-101/{class}/{key}.avi"));
                units.push(key);
            }
        }
    }
    Dataset {
        files,
        specs: "    - {name: video, file_type: video, extensions: [.avi], is_required: true, is_primary: true}
",
        rules: "",
        units: keys(units),
        excluded: 0,
        contents: Vec::new(),
    }
}

/// Writes the skeleton under `data/` (every file non-empty: the upload API
/// rejects empty files) and returns the fixture.
fn materialise(d: &Dataset) -> Fixture {
    let f = Fixture::new();
    for (i, rel) in d.files.iter().enumerate() {
        f.write(&format!("data/{rel}"), format!("{rel} {i}\n"));
    }
    for (rel, content) in &d.contents {
        f.write(&format!("data/{rel}"), content);
    }
    f
}

fn plan_json(f: &Fixture, recipe: &str) -> Json {
    let out = f.run(&["plan", recipe, "--format", "json"]);
    assert!(
        out.code == 0,
        "plan {recipe} exited {}: {}\n{}",
        out.code,
        out.stderr,
        std::fs::read_to_string(f.join(recipe)).unwrap_or_default()
    );
    serde_json::from_str(&out.stdout).unwrap()
}

fn planned_units(plan: &Json) -> Vec<String> {
    plan["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert_eq!(u["action"], "create", "{u}");
            u["key"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// The user's recipe and explore's suggestion both plan to the units; the
/// explore output is snapshotted.
fn check(name: &str, d: Dataset) {
    let f = materialise(&d);
    f.write(
        "user.yaml",
        format!(
            "version: 1\nname: {name}\ncollection:\n  file_specifications:\n{}source: {{path: data}}\n{}",
            d.specs, d.rules
        ),
    );
    let plan = plan_json(&f, "user.yaml");
    assert_eq!(planned_units(&plan), d.units, "{name}: the user's recipe");
    assert_eq!(
        plan["summary"]["excluded_files"], d.excluded,
        "{name}: excluded"
    );

    let out = f.run(&["explore", "data", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let e: Json = serde_json::from_str(&out.stdout).unwrap();
    let recipe = e["suggested_recipe"].as_str().expect("a suggested recipe");
    f.write("suggested.yaml", recipe);
    let plan = plan_json(&f, "suggested.yaml");
    assert_eq!(
        planned_units(&plan),
        d.units,
        "{name}: explore's suggestion\n{recipe}"
    );
    let text = f.run(&["explore", "data"]);
    insta::assert_snapshot!(format!("explore_{name}"), text.stdout);
    // One line per dataset for the record (`cargo test datasets -- --nocapture`).
    eprintln!(
        "dataset {name}: {} units expected; the user's recipe and explore's suggestion both planned them; explore: {}",
        d.units.len(),
        e["layout"]["reason"].as_str().unwrap_or("-")
    );
}

macro_rules! datasets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name), super::$name());
            }
        )*
    };
}

mod layouts {
    use super::check;
    datasets!(
        brats2021,
        msd_task01_brain_tumour,
        nnunet_dataset001,
        isic2018_task1,
        kitti_object,
        cityscapes,
        pascal_voc2012,
        oxford_iiit_pet,
        imagenet_ilsvrc,
        librispeech,
        speech_commands,
        ucf101,
    );
}
