//! Loading Vulkan, listing the devices, choosing one deterministically and opening it with one
//! compute queue and the memory extensions it has.

use std::collections::HashSet;
use std::ffi::{c_char, CStr, CString};
use std::fmt;

use ash::{ext, khr, vk};

use crate::error::{vk_error, GpuError};

/// Which Vulkan devices [`Converter::open`](crate::Converter::open) may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceChoice {
    /// A discrete or integrated GPU only; a host with only a CPU device (llvmpipe) gets
    /// [`GpuError::NoHardwareDevice`]. What production workers ask for.
    Hardware,
    /// The best device there is: discrete, then integrated, then virtual, then CPU (llvmpipe,
    /// for tests and for trying the GPU path on a machine without one).
    Any,
}

/// What kind of device a Vulkan device is (`VkPhysicalDeviceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKind {
    /// A GPU on its own card.
    Discrete,
    /// A GPU sharing the CPU's memory.
    Integrated,
    /// A GPU of a virtual machine.
    Virtual,
    /// Software rendering on the CPU (llvmpipe, SwiftShader).
    Cpu,
    /// Anything else.
    Other,
}

impl DeviceKind {
    fn from_vk(kind: vk::PhysicalDeviceType) -> DeviceKind {
        match kind {
            vk::PhysicalDeviceType::DISCRETE_GPU => DeviceKind::Discrete,
            vk::PhysicalDeviceType::INTEGRATED_GPU => DeviceKind::Integrated,
            vk::PhysicalDeviceType::VIRTUAL_GPU => DeviceKind::Virtual,
            vk::PhysicalDeviceType::CPU => DeviceKind::Cpu,
            _ => DeviceKind::Other,
        }
    }

    /// Whether this is real GPU hardware (discrete or integrated).
    pub fn is_hardware(self) -> bool {
        matches!(self, DeviceKind::Discrete | DeviceKind::Integrated)
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Discrete => "discrete GPU",
            DeviceKind::Integrated => "integrated GPU",
            DeviceKind::Virtual => "virtual GPU",
            DeviceKind::Cpu => "CPU",
            DeviceKind::Other => "other",
        })
    }
}

/// The device a converter runs on and what it can do; its `Display` is a one-line report for
/// the worker's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Index in the Vulkan loader's device list.
    pub index: u32,
    /// The device name (`deviceName`).
    pub name: String,
    /// Discrete, integrated, CPU...
    pub kind: DeviceKind,
    /// The driver name (`driverName`, e.g. `NVIDIA`, `radv`, `llvmpipe`), or the vendor id.
    pub driver: String,
    /// Host memory (the frame ring) can be imported (VK_EXT_external_memory_host): no copy
    /// through a staging buffer.
    pub host_import: bool,
    /// The output planes can be exported as an OPAQUE_FD (VK_KHR_external_memory_fd), for a
    /// CUDA/NVENC stage.
    pub export_fd: bool,
    /// `deviceUUID`: the same bytes CUDA reports for the same GPU, so a CUDA stage can open
    /// the device this converter runs on.
    pub uuid: [u8; 16],
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "vulkan device {}: {} ({}), driver {}, host import {}, fd export {}",
            self.index,
            self.name,
            self.kind,
            self.driver,
            yes(self.host_import),
            yes(self.export_fd)
        )
    }
}

/// Set to enable VK_LAYER_KHRONOS_validation when it is installed (development only).
const VALIDATION_ENV: &str = "RETROFARM_GPU_VALIDATION";
const VALIDATION_LAYER: &CStr = c"VK_LAYER_KHRONOS_validation";

/// An open Vulkan device with one compute queue: what the converter's parts share.
pub(crate) struct Gpu {
    /// Keeps libvulkan loaded while the instance lives.
    _entry: ash::Entry,
    pub(crate) instance: ash::Instance,
    pub(crate) device: ash::Device,
    pub(crate) queue: vk::Queue,
    pub(crate) queue_family: u32,
    pub(crate) info: DeviceInfo,
    pub(crate) memory: vk::PhysicalDeviceMemoryProperties,
    pub(crate) limits: vk::PhysicalDeviceLimits,
    /// Nanoseconds per timestamp tick, when the queue has timestamps.
    pub(crate) timestamp_period_ns: Option<f64>,
    /// The valid bits of a timestamp.
    pub(crate) timestamp_mask: u64,
    /// `minImportedHostPointerAlignment`; meaningful when `host` is set.
    pub(crate) import_alignment: usize,
    /// VK_EXT_external_memory_host, when enabled and usable for transfer sources.
    pub(crate) host: Option<ext::external_memory_host::Device>,
    /// VK_KHR_external_memory_fd, when enabled and OPAQUE_FD storage buffers are exportable.
    pub(crate) fd: Option<khr::external_memory_fd::Device>,
    /// OPAQUE_FD exports of storage buffers must be dedicated allocations on this device.
    pub(crate) export_dedicated: bool,
}

/// One device as found, before opening.
struct Candidate {
    physical: vk::PhysicalDevice,
    info: DeviceInfo,
    queue_family: u32,
    timestamp_valid_bits: u32,
    properties: vk::PhysicalDeviceProperties,
    import_alignment: usize,
    has_host_ext: bool,
    has_fd_ext: bool,
    export_dedicated: bool,
}

impl Gpu {
    /// Loads libvulkan, creates an instance and opens the device `choice` picks.
    pub(crate) fn open(choice: DeviceChoice) -> Result<Gpu, GpuError> {
        // SAFETY: loads the system's Vulkan loader (libvulkan.so.1), whose initialisers are
        // sound to run; ash keeps the library loaded as long as `entry` lives, and `entry` is
        // stored in the `Gpu` that owns everything made from it.
        let entry = unsafe { ash::Entry::load() }.map_err(|e| GpuError::NoLoader(e.to_string()))?;
        // SAFETY: a plain query on a loaded entry.
        let version = unsafe { entry.try_enumerate_instance_version() }
            .map_err(vk_error("vkEnumerateInstanceVersion"))?
            .unwrap_or(vk::API_VERSION_1_0);
        if version < vk::API_VERSION_1_1 {
            return Err(GpuError::LoaderTooOld);
        }
        let instance = create_instance(&entry)?;
        // From here on the instance must be destroyed on every error path.
        match choose(&instance, choice).and_then(|c| open_device(&instance, c)) {
            Ok((candidate, device)) => Ok(Gpu::assemble(entry, instance, candidate, device)),
            Err(e) => {
                // SAFETY: nothing made from the instance is alive (open_device cleans up
                // after itself), and it is not used again.
                unsafe { instance.destroy_instance(None) };
                Err(e)
            }
        }
    }

    fn assemble(entry: ash::Entry, instance: ash::Instance, c: Candidate, device: ash::Device) -> Gpu {
        // SAFETY: a valid queue family index with one queue, as the device was created with.
        let queue = unsafe { device.get_device_queue(c.queue_family, 0) };
        // SAFETY: plain query on a valid physical device.
        let memory = unsafe { instance.get_physical_device_memory_properties(c.physical) };
        let host = c.info.host_import.then(|| ext::external_memory_host::Device::new(&instance, &device));
        let fd = c.info.export_fd.then(|| khr::external_memory_fd::Device::new(&instance, &device));
        let timestamp_period_ns = (c.timestamp_valid_bits > 0 && c.properties.limits.timestamp_period > 0.0)
            .then_some(f64::from(c.properties.limits.timestamp_period));
        Gpu {
            _entry: entry,
            instance,
            device,
            queue,
            queue_family: c.queue_family,
            info: c.info,
            memory,
            limits: c.properties.limits,
            timestamp_period_ns,
            timestamp_mask: u64::MAX.checked_shr(64 - c.timestamp_valid_bits.min(64)).unwrap_or(0),
            import_alignment: c.import_alignment,
            host,
            fd,
            export_dedicated: c.export_dedicated,
        }
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // SAFETY: the converter destroyed everything made from the device before dropping its
        // `Gpu` (which is its last field); the device is idle (it waited) and neither handle is
        // used again.
        unsafe {
            self.device.destroy_device(None);
            self.instance.destroy_instance(None);
        }
    }
}

fn create_instance(entry: &ash::Entry) -> Result<ash::Instance, GpuError> {
    let app = vk::ApplicationInfo::default()
        .application_name(c"retrofarm")
        .engine_name(c"retrofarm-gpu")
        .api_version(vk::API_VERSION_1_2);
    let mut layers: Vec<*const c_char> = Vec::new();
    if std::env::var_os(VALIDATION_ENV).is_some() {
        // SAFETY: a plain query on a loaded entry.
        let available = unsafe { entry.enumerate_instance_layer_properties() }.unwrap_or_default();
        if available.iter().any(|l| l.layer_name_as_c_str() == Ok(VALIDATION_LAYER)) {
            layers.push(VALIDATION_LAYER.as_ptr());
        }
    }
    let info = vk::InstanceCreateInfo::default().application_info(&app).enabled_layer_names(&layers);
    // SAFETY: `info` and what it points to (app info, layer names: 'static C strings) outlive
    // the call.
    unsafe { entry.create_instance(&info, None) }.map_err(|e| match e {
        vk::Result::ERROR_INCOMPATIBLE_DRIVER => {
            GpuError::NoDevice { found: "; no Vulkan driver (ICD) is installed".into() }
        }
        other => vk_error("vkCreateInstance")(other),
    })
}

/// Lists the devices and picks one: the best kind `choice` allows, the lowest index among
/// equals, so the same host always gets the same device.
fn choose(instance: &ash::Instance, choice: DeviceChoice) -> Result<Candidate, GpuError> {
    // SAFETY: a plain query on a valid instance.
    let physicals = unsafe { instance.enumerate_physical_devices() }.map_err(vk_error("vkEnumeratePhysicalDevices"))?;
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for (index, &physical) in physicals.iter().enumerate() {
        match inspect(instance, physical, index as u32) {
            Ok(candidate) => usable.push(candidate),
            Err(why) => skipped.push(why),
        }
    }
    let rank = |c: &Candidate| (c.info.kind, c.info.index);
    let allowed = |c: &Candidate| choice == DeviceChoice::Any || c.info.kind.is_hardware();
    let best = usable.iter().enumerate().filter(|(_, c)| allowed(c)).min_by_key(|(_, c)| rank(c)).map(|(i, _)| i);
    match best {
        Some(best) => Ok(usable.swap_remove(best)),
        None if usable.is_empty() => {
            let found = if skipped.is_empty() { String::new() } else { format!("; found {}", skipped.join(", ")) };
            Err(GpuError::NoDevice { found })
        }
        None => {
            let found = usable.iter().map(|c| format!("{} ({})", c.info.name, c.info.kind)).collect::<Vec<_>>();
            Err(GpuError::NoHardwareDevice { found: found.join(", ") })
        }
    }
}

/// What one device offers, or why it cannot be used.
fn inspect(instance: &ash::Instance, physical: vk::PhysicalDevice, index: u32) -> Result<Candidate, String> {
    // SAFETY: plain queries on a valid physical device (here and below).
    let properties = unsafe { instance.get_physical_device_properties(physical) };
    let name = properties.device_name_as_c_str().map_or_else(|_| "?".into(), |n| n.to_string_lossy().into_owned());
    let api = properties.api_version;
    if api < vk::API_VERSION_1_1 {
        return Err(format!("{name} (Vulkan {}.{} only)", vk::api_version_major(api), vk::api_version_minor(api)));
    }
    // SAFETY: as above.
    let families = unsafe { instance.get_physical_device_queue_family_properties(physical) };
    // A compute-only family (async compute) first, else the first with compute at all.
    let compute = |f: &vk::QueueFamilyProperties| f.queue_count > 0 && f.queue_flags.contains(vk::QueueFlags::COMPUTE);
    let family = families
        .iter()
        .position(|f| compute(f) && !f.queue_flags.contains(vk::QueueFlags::GRAPHICS))
        .or_else(|| families.iter().position(compute))
        .ok_or_else(|| format!("{name} (no compute queue)"))?;
    // SAFETY: as above.
    let extensions: HashSet<CString> = unsafe { instance.enumerate_device_extension_properties(physical) }
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.extension_name_as_c_str().ok().map(CStr::to_owned))
        .collect();
    let has = |name: &CStr| extensions.contains(name);
    let has_host_ext = has(ext::external_memory_host::NAME);
    let has_fd_ext = has(khr::external_memory_fd::NAME);
    let has_driver_props = api >= vk::API_VERSION_1_2 || has(khr::driver_properties::NAME);

    let mut driver_props = vk::PhysicalDeviceDriverProperties::default();
    let mut host_props = vk::PhysicalDeviceExternalMemoryHostPropertiesEXT::default();
    let mut id_props = vk::PhysicalDeviceIDProperties::default();
    // Vulkan 1.1 core, which the converter requires.
    let mut props2 = vk::PhysicalDeviceProperties2::default().push_next(&mut id_props);
    if has_driver_props {
        props2 = props2.push_next(&mut driver_props);
    }
    if has_host_ext {
        props2 = props2.push_next(&mut host_props);
    }
    // SAFETY: as above; the chain holds only structures of extensions the device has.
    unsafe { instance.get_physical_device_properties2(physical, &mut props2) };
    let driver = if has_driver_props {
        driver_props.driver_name_as_c_str().map_or_else(|_| "?".into(), |n| n.to_string_lossy().into_owned())
    } else {
        format!("vendor {:#06x}", properties.vendor_id)
    };

    let host_import = has_host_ext
        && external_features(
            instance,
            physical,
            vk::BufferUsageFlags::TRANSFER_SRC,
            vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT,
        )
        .contains(vk::ExternalMemoryFeatureFlags::IMPORTABLE);
    let fd_features = if has_fd_ext {
        external_features(instance, physical, crate::memory::OUTPUT_USAGE, vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD)
    } else {
        vk::ExternalMemoryFeatureFlags::empty()
    };
    let export_fd = fd_features.contains(vk::ExternalMemoryFeatureFlags::EXPORTABLE);
    Ok(Candidate {
        physical,
        info: DeviceInfo {
            index,
            name,
            kind: DeviceKind::from_vk(properties.device_type),
            driver,
            host_import,
            export_fd,
            uuid: id_props.device_uuid,
        },
        queue_family: family as u32,
        timestamp_valid_bits: families[family].timestamp_valid_bits,
        properties,
        import_alignment: host_props.min_imported_host_pointer_alignment.max(1) as usize,
        has_host_ext,
        has_fd_ext,
        export_dedicated: fd_features.contains(vk::ExternalMemoryFeatureFlags::DEDICATED_ONLY),
    })
}

/// What the device can do with buffers of `usage` in external memory of `handle`.
fn external_features(
    instance: &ash::Instance,
    physical: vk::PhysicalDevice,
    usage: vk::BufferUsageFlags,
    handle: vk::ExternalMemoryHandleTypeFlags,
) -> vk::ExternalMemoryFeatureFlags {
    let info = vk::PhysicalDeviceExternalBufferInfo::default().usage(usage).handle_type(handle);
    let mut out = vk::ExternalBufferProperties::default();
    // SAFETY: a core 1.1 query (the device is 1.1 or later) with valid structures.
    unsafe { instance.get_physical_device_external_buffer_properties(physical, &info, &mut out) };
    out.external_memory_properties.external_memory_features
}

/// Creates the device with one queue of the candidate's compute family and the memory
/// extensions it has (only those).
fn open_device(instance: &ash::Instance, c: Candidate) -> Result<(Candidate, ash::Device), GpuError> {
    let mut extensions = Vec::new();
    if c.has_host_ext {
        extensions.push(ext::external_memory_host::NAME.as_ptr());
    }
    if c.has_fd_ext {
        extensions.push(khr::external_memory_fd::NAME.as_ptr());
    }
    let priorities = [1.0_f32];
    let queues =
        [vk::DeviceQueueCreateInfo::default().queue_family_index(c.queue_family).queue_priorities(&priorities)];
    let info = vk::DeviceCreateInfo::default().queue_create_infos(&queues).enabled_extension_names(&extensions);
    // SAFETY: `info` and everything it points to outlive the call; the extensions were listed
    // by the device and the queue family index is one of its families.
    let device = unsafe { instance.create_device(c.physical, &info, None) }.map_err(vk_error("vkCreateDevice"))?;
    Ok((c, device))
}
