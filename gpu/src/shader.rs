//! The compute shader (`shaders/convert.wgsl`, compiled and validated by `build.rs`), its
//! pipeline and descriptor set, and the job records it reads.

use ash::vk;
use retrofarm_media::PixelFormat;

use crate::device::Gpu;
use crate::error::{vk_error, GpuError};
use crate::layout::Planes;

/// Constants read from the shader by build.rs: `JOB_WORDS`, `JOB_<FIELD>` word indices,
/// `FORMAT_*` codes and `WORKGROUP_SIZE`.
mod generated {
    include!(concat!(env!("OUT_DIR"), "/shader_layout.rs"));
}
pub(crate) use generated::*;

/// The SPIR-V build.rs made from `shaders/convert.wgsl`.
const SPIRV: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/convert.spv"));

/// Descriptor bindings (group 0), as in the shader.
const BINDING_ARENA: u32 = 0;
const BINDING_JOBS: u32 = 1;
const BINDING_PLANES: u32 = 2;

/// One job as the shader reads it (`struct Job`).
pub(crate) type JobRecord = [u32; JOB_WORDS];

/// Everything the shader needs to know about one job, in the units it wants.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobParams {
    /// Byte offset of the frame in the arena.
    pub(crate) arena_offset: u32,
    pub(crate) format: PixelFormat,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) stride: u32,
    pub(crate) placement: retrofarm_media::Placement,
    pub(crate) planes: Planes,
}

impl JobParams {
    /// The record; offsets were checked to fit in u32 when the batch was planned.
    pub(crate) fn record(&self) -> JobRecord {
        let p = &self.placement;
        let mut r = [0u32; JOB_WORDS];
        r[JOB_SRC_OFFSET] = self.arena_offset;
        r[JOB_SRC_WIDTH] = self.width;
        r[JOB_SRC_HEIGHT] = self.height;
        r[JOB_SRC_STRIDE] = self.stride;
        r[JOB_FORMAT] = match self.format {
            PixelFormat::Xrgb8888 => FORMAT_XRGB8888,
            PixelFormat::Rgb565 => FORMAT_RGB565,
            PixelFormat::Xrgb1555 => FORMAT_XRGB1555,
        };
        r[JOB_SCALE] = p.scale;
        r[JOB_CANVAS_WIDTH] = p.width;
        r[JOB_CANVAS_HEIGHT] = p.height;
        r[JOB_IMAGE_X] = p.x;
        r[JOB_IMAGE_Y] = p.y;
        r[JOB_IMAGE_WIDTH] = p.image_width();
        r[JOB_IMAGE_HEIGHT] = p.image_height();
        let word = |offset: u64| offset as u32;
        r[JOB_OUT_Y] = word(self.planes.y);
        r[JOB_OUT_U] = word(self.planes.u);
        r[JOB_OUT_V] = word(self.planes.v);
        r[JOB_OUT_UV] = word(self.planes.uv);
        r[JOB_PITCH] = self.planes.pitch;
        r
    }

    /// Workgroups along x and y that cover this job's canvas.
    pub(crate) fn groups(&self) -> (u32, u32) {
        let blocks_x = self.planes.pitch / crate::layout::BLOCK_WIDTH;
        let blocks_y = self.planes.height / 2;
        (blocks_x.div_ceil(WORKGROUP_SIZE[0]), blocks_y.div_ceil(WORKGROUP_SIZE[1]))
    }
}

/// The compute pipeline and its one descriptor set (arena, jobs, planes).
pub(crate) struct Pipeline {
    set_layout: vk::DescriptorSetLayout,
    pub(crate) layout: vk::PipelineLayout,
    pub(crate) pipeline: vk::Pipeline,
    pool: vk::DescriptorPool,
    pub(crate) set: vk::DescriptorSet,
}

impl Pipeline {
    /// No pipeline yet (null handles).
    pub(crate) const NONE: Pipeline = Pipeline {
        set_layout: vk::DescriptorSetLayout::null(),
        layout: vk::PipelineLayout::null(),
        pipeline: vk::Pipeline::null(),
        pool: vk::DescriptorPool::null(),
        set: vk::DescriptorSet::null(),
    };

    pub(crate) fn new(gpu: &Gpu) -> Result<Pipeline, GpuError> {
        let mut p = Pipeline::NONE;
        match p.build(gpu) {
            Ok(()) => Ok(p),
            Err(e) => {
                // SAFETY: nothing made so far is in use.
                unsafe { p.destroy(gpu) };
                Err(e)
            }
        }
    }

    fn build(&mut self, gpu: &Gpu) -> Result<(), GpuError> {
        let device = &gpu.device;
        let bindings = [BINDING_ARENA, BINDING_JOBS, BINDING_PLANES].map(|binding| {
            vk::DescriptorSetLayoutBinding::default()
                .binding(binding)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(1)
                .stage_flags(vk::ShaderStageFlags::COMPUTE)
        });
        let info = vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings);
        // SAFETY: valid create info (here and for the objects below); each is destroyed by
        // `destroy`.
        self.set_layout = unsafe { device.create_descriptor_set_layout(&info, None) }
            .map_err(vk_error("vkCreateDescriptorSetLayout"))?;
        let push = [vk::PushConstantRange::default()
            .stage_flags(vk::ShaderStageFlags::COMPUTE)
            .offset(0)
            .size(std::mem::size_of::<u32>() as u32)];
        let set_layouts = [self.set_layout];
        let info = vk::PipelineLayoutCreateInfo::default().set_layouts(&set_layouts).push_constant_ranges(&push);
        // SAFETY: as above.
        self.layout =
            unsafe { device.create_pipeline_layout(&info, None) }.map_err(vk_error("vkCreatePipelineLayout"))?;

        let code = ash::util::read_spv(&mut std::io::Cursor::new(SPIRV)).expect("build.rs writes whole words");
        let info = vk::ShaderModuleCreateInfo::default().code(&code);
        // SAFETY: SPIR-V that naga generated from a validated module.
        let module = unsafe { device.create_shader_module(&info, None) }.map_err(vk_error("vkCreateShaderModule"))?;
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(module)
            .name(c"main");
        let info = [vk::ComputePipelineCreateInfo::default().stage(stage).layout(self.layout)];
        // SAFETY: as above; the module is only needed during creation.
        let created = unsafe { device.create_compute_pipelines(vk::PipelineCache::null(), &info, None) };
        // SAFETY: the pipeline (if made) no longer needs the module.
        unsafe { device.destroy_shader_module(module, None) };
        self.pipeline = created.map_err(|(_, e)| vk_error("vkCreateComputePipelines")(e))?[0];

        let sizes = [vk::DescriptorPoolSize::default().ty(vk::DescriptorType::STORAGE_BUFFER).descriptor_count(3)];
        let info = vk::DescriptorPoolCreateInfo::default().max_sets(1).pool_sizes(&sizes);
        // SAFETY: as above.
        self.pool =
            unsafe { device.create_descriptor_pool(&info, None) }.map_err(vk_error("vkCreateDescriptorPool"))?;
        let info = vk::DescriptorSetAllocateInfo::default().descriptor_pool(self.pool).set_layouts(&set_layouts);
        // SAFETY: the pool has room for exactly this set.
        self.set = unsafe { device.allocate_descriptor_sets(&info) }.map_err(vk_error("vkAllocateDescriptorSets"))?[0];
        Ok(())
    }

    /// Points the descriptor set at the current buffers.
    ///
    /// # Safety
    /// No submitted command buffer that uses the set may be pending.
    pub(crate) unsafe fn bind(&self, gpu: &Gpu, arena: vk::Buffer, jobs: vk::Buffer, planes: vk::Buffer) {
        let infos =
            [arena, jobs, planes].map(|b| [vk::DescriptorBufferInfo::default().buffer(b).range(vk::WHOLE_SIZE)]);
        let writes: Vec<_> = [BINDING_ARENA, BINDING_JOBS, BINDING_PLANES]
            .iter()
            .zip(&infos)
            .map(|(&binding, info)| {
                vk::WriteDescriptorSet::default()
                    .dst_set(self.set)
                    .dst_binding(binding)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(info)
            })
            .collect();
        // SAFETY: valid buffers with STORAGE_BUFFER usage; the set is idle (contract).
        unsafe { gpu.device.update_descriptor_sets(&writes, &[]) };
    }

    /// # Safety
    /// The GPU must be done with the pipeline.
    pub(crate) unsafe fn destroy(&mut self, gpu: &Gpu) {
        let device = &gpu.device;
        // SAFETY: per the contract; null handles are ignored; the set goes with its pool.
        unsafe {
            device.destroy_descriptor_pool(self.pool, None);
            device.destroy_pipeline(self.pipeline, None);
            device.destroy_pipeline_layout(self.layout, None);
            device.destroy_descriptor_set_layout(self.set_layout, None);
        }
        self.pool = vk::DescriptorPool::null();
        self.pipeline = vk::Pipeline::null();
        self.layout = vk::PipelineLayout::null();
        self.set_layout = vk::DescriptorSetLayout::null();
    }
}
