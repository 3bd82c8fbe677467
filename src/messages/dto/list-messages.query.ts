import { PageQuery } from '../../common/pagination/page-query';

export class ListMessagesQuery extends PageQuery({ maxLimit: 1000, defaultLimit: 100 }) {}
