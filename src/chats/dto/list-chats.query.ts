import { PageQuery } from '../../common/pagination/page-query';

export class ListChatsQuery extends PageQuery({ maxLimit: 100, defaultLimit: 20 }) {}
