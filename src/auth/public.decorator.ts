import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'konko:isPublic';

/** Routes that need no API key even when API keys are configured: health, metrics. */
export const Public = () => SetMetadata(IS_PUBLIC, true);
